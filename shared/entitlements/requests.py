"""Request bodies of the entitlement and grant endpoints (engine-rules §2.4, §2.5), in the v3 style.

Intervals (usage periods, grant recurrences) take an ISO-8601 duration of at least one hour with
whole minutes (`PT1H`, `P1D`, `P1M`, `P1Y`, `P1DT12H`) or one of the enum names DAY / WEEK / MONTH /
YEAR; both are normalised to the ISO form. Amounts take a number or a decimal string, never negative.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.api.validation import Rfc3339

ENUM_INTERVALS = {"DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
MAX_METADATA = 50
# DynamoDB numbers carry 38 significant digits.
MAX_DIGITS = 38


def normalize_interval(value: Any) -> str:
    """An interval in ISO-8601 form; ValueError unless it is at least one hour of whole minutes."""
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be an ISO-8601 duration or DAY, WEEK, MONTH, YEAR")
    text = ENUM_INTERVALS.get(value.upper(), value.upper())
    match = _DURATION.match(text)
    if not match:
        raise ValueError("must be an ISO-8601 duration (e.g. PT1H, P1D, P1M) or DAY, WEEK, MONTH, YEAR")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if parts.get("s", 0) % 60:
        raise ValueError("must be a whole number of minutes")
    calendar = any(parts.get(k, 0) for k in ("y", "mo", "w", "d"))
    seconds = parts.get("h", 0) * 3600 + parts.get("mi", 0) * 60 + parts.get("s", 0)
    if not calendar and seconds < 3600:
        raise ValueError("must be at least one hour (PT1H)")
    return text


def _amount(value: Any) -> Any:
    # Booleans are ints to Python; an amount must be a real number or a decimal string.
    if isinstance(value, bool):
        raise PydanticCustomError("decimal_type", "must be a number or a decimal string")
    if isinstance(value, str) and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value.strip()):
        raise PydanticCustomError("decimal_parsing", "must be a non-negative decimal number")
    return value


Interval = Annotated[str, BeforeValidator(normalize_interval)]
Amount = Annotated[Decimal, BeforeValidator(_amount), Field(ge=0, max_digits=MAX_DIGITS)]
Priority = Annotated[int, Field(ge=1, le=255, strict=True)]


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for key, item in value.items():
        if not 1 <= len(key) <= 256:
            raise ValueError(f"metadata key [{key[:40]}] must be 1-256 characters")
        if len(item) > 1024:
            raise ValueError(f"metadata [{key}] value must be at most 1024 characters")
    return value


Metadata = Annotated[
    dict[str, str] | None, Field(default=None, max_length=MAX_METADATA), AfterValidator(_check_metadata)
]


class UsagePeriodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: Interval
    anchor: Rfc3339 | None = None


class IssueRequest(BaseModel):
    """The default grant issued at creation and restored at every reset (`issueAfterReset`)."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount
    priority: Priority = 1


class MeasureUsageFrom(StrEnum):
    CURRENT_PERIOD_START = "CURRENT_PERIOD_START"
    NOW = "NOW"


class CreateEntitlementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["metered", "boolean", "static"]
    feature_key: str | None = Field(default=None, min_length=1, max_length=64)
    feature_id: str | None = Field(default=None, min_length=1, max_length=64)
    usage_period: UsagePeriodRequest | None = None
    measure_usage_from: MeasureUsageFrom | Rfc3339 | None = None
    is_soft_limit: StrictBool | None = None
    preserve_overage_at_reset: StrictBool | None = None
    issue: IssueRequest | None = None
    config: Any = None
    metadata: Metadata = None

    @field_validator("measure_usage_from", mode="before")
    @classmethod
    def _measure_usage_from(cls, value: Any) -> Any:
        if isinstance(value, str) and value in MeasureUsageFrom.__members__:
            return MeasureUsageFrom(value)
        if isinstance(value, str) and not value[:1].isdigit():
            raise PydanticCustomError("enum", "must be CURRENT_PERIOD_START, NOW or an RFC 3339 date-time")
        return value

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: Any) -> Any:
        """A JSON object, or a string holding one (the v1 shape); stored as the object."""
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise PydanticCustomError("dict_type", "must be a JSON object (or a string of one)") from None
        if not isinstance(value, dict):
            raise PydanticCustomError("dict_type", "must be a JSON object (or a string of one)")
        return value


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_at: Rfc3339 | None = None
    retain_anchor: StrictBool = False
    preserve_overage: StrictBool | None = None


class ExpirationDuration(StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class ExpirationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: ExpirationDuration
    count: int = Field(ge=1, le=1000, strict=True)


class RecurrenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: Interval
    anchor: Rfc3339 | None = None


class CreateGrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    priority: Priority = 1
    effective_at: Rfc3339
    expiration: ExpirationRequest | None = None
    min_rollover_amount: Amount | None = None
    max_rollover_amount: Amount | None = None
    recurrence: RecurrenceRequest | None = None
    metadata: Metadata = None


class VoidGrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Rfc3339 | None = None
