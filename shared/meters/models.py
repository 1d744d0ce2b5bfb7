"""Meter domain model and the contract's request shapes (`CreateMeterRequest`, `UpdateMeterRequest`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.api.validation import Rfc3339
from shared.core.labels import check_labels
from shared.core.timeutil import format_rfc3339, instant_problem
from shared.meters.jsonpath import validate_path

RESOURCE_KEY = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"
DIMENSION_KEY = re.compile(r"^[a-zA-Z_][0-9a-zA-Z_]*$")
# `subject` and `customer_id` are reserved query dimensions (contract MeterQueryRow).
RESERVED_DIMENSIONS = frozenset({"subject", "customer_id"})
MAX_DIMENSIONS = 20


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"
    UNIQUE_COUNT = "unique_count"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LATEST = "latest"


def _check_path(value: str | None) -> str | None:
    if value is not None and (reason := validate_path(value)):
        raise ValueError(reason)
    return value


def _check_instant(value: datetime | None) -> datetime | None:
    if value is not None and (reason := instant_problem(value)):
        raise ValueError(reason)
    return value


def _check_dimensions(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_DIMENSIONS:
        raise ValueError(f"at most {MAX_DIMENSIONS} dimensions are allowed")
    for name, path in value.items():
        if not DIMENSION_KEY.match(name):
            raise ValueError(
                f"dimension name [{name}] must be alphanumeric or underscore, not starting with a digit"
            )
        if name in RESERVED_DIMENSIONS:
            raise ValueError(f"dimension name [{name}] is reserved")
        if reason := validate_path(path):
            raise ValueError(f"dimension [{name}] {reason}")
    return value


Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]
Dimensions = Annotated[dict[str, str] | None, AfterValidator(_check_dimensions)]


class CreateMeterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    labels: Labels = None
    key: str = Field(min_length=1, max_length=64, pattern=RESOURCE_KEY)
    aggregation: Aggregation
    event_type: str = Field(min_length=1)
    events_from: Annotated[Rfc3339 | None, AfterValidator(_check_instant)] = None
    value_property: Annotated[str | None, AfterValidator(_check_path)] = Field(
        default=None, min_length=1, validate_default=True
    )
    dimensions: Dimensions = None

    # Field validators (not a model validator) so errors name the field in `invalid_parameters`.
    @field_validator("value_property")
    @classmethod
    def _value_property_required(cls, value: str | None, info: ValidationInfo) -> str | None:
        aggregation = info.data.get("aggregation")
        if aggregation is not None and aggregation != Aggregation.COUNT and not value:
            raise PydanticCustomError("missing", f"value_property is required for {aggregation.value} meters")
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions_differ_from_value(cls, value: dict[str, str] | None, info: ValidationInfo) -> Any:
        prop = info.data.get("value_property")
        if prop and value and prop in value.values():
            raise ValueError("a dimension must not use the same JSONPath as value_property")
        return value


class UpdateMeterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    labels: Labels = None
    dimensions: Dimensions = None


@dataclass
class Meter:
    id: str
    key: str
    name: str
    aggregation: Aggregation
    event_type: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    events_from: datetime | None = None
    value_property: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)
    deleted_at: datetime | None = None
    # Stored fields that could not be read (field -> reason): the meter still lists, reads and
    # deletes, but the pipeline can't evaluate it and skips it (docs/architecture.md).
    problems: dict[str, str] = field(default_factory=dict)
    unread: dict[str, Any] = field(default_factory=dict)  # their stored values, kept on writes

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "aggregation": self.aggregation.value,
            "event_type": self.event_type,
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
            "dimensions": dict(self.dimensions),
        }
        if self.description is not None:
            body["description"] = self.description
        if self.labels is not None:
            body["labels"] = self.labels
        if self.events_from is not None:
            body["events_from"] = format_rfc3339(self.events_from)
        if self.value_property is not None:
            body["value_property"] = self.value_property
        if self.deleted_at is not None:
            body["deleted_at"] = format_rfc3339(self.deleted_at)
        return body
