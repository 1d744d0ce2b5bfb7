"""Typed inputs of the meter endpoints: the contract's bodies (`CreateMeterRequest`,
`UpdateMeterRequest`) and the list query. The only meters module that knows the wire names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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

from shared.api.params import Page, StringFilter, page_params, string_filters
from shared.api.validation import Rfc3339, validate_model
from shared.core.labels import check_labels
from shared.core.timeutil import instant_problem
from shared.meters.jsonpath import validate_path
from shared.meters.models import DIMENSION_KEY, MAX_DIMENSIONS, RESERVED_DIMENSIONS, RESOURCE_KEY, Aggregation

# A JSONPath into an event's data: far longer than any real one, short enough that a meter's 20
# dimensions fit its DynamoDB item (400 KB; unbounded paths overflowed it: a 500).
MAX_PATH_LENGTH = 1024
# An event's `type` is at most 256 bytes of UTF-8 (shared/ingest/cloudevents.py): a meter on a longer
# one could never count anything.
MAX_EVENT_TYPE_BYTES = 256


def _check_path(value: str | None) -> str | None:
    if value is not None and (reason := validate_path(value)):
        raise ValueError(reason)
    return value


def _check_event_type(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_EVENT_TYPE_BYTES:
        raise ValueError(f"must be at most {MAX_EVENT_TYPE_BYTES} bytes in UTF-8, as an event's type")
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
        if len(path) > MAX_PATH_LENGTH:
            raise ValueError(f"dimension [{name}] must be a JSONPath of at most {MAX_PATH_LENGTH} characters")
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
    event_type: Annotated[str, AfterValidator(_check_event_type)] = Field(min_length=1)
    events_from: Annotated[Rfc3339 | None, AfterValidator(_check_instant)] = None
    value_property: Annotated[str | None, AfterValidator(_check_path)] = Field(
        default=None, min_length=1, max_length=MAX_PATH_LENGTH, validate_default=True
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


@dataclass(frozen=True)
class ListMetersQuery:
    page: Page
    filters: list[StringFilter]
    sort: str | None


def create_meter(body: Any) -> CreateMeterRequest:
    return validate_model(CreateMeterRequest, body)


def update_meter(body: Any) -> UpdateMeterRequest:
    return validate_model(UpdateMeterRequest, body)


def list_meters(params: dict[str, str] | None) -> ListMetersQuery:
    page = page_params(params)
    return ListMetersQuery(page, string_filters(params, ("key", "name")), (params or {}).get("sort"))
