"""Typed inputs of the entitlement and grant endpoints (engine-rules §2.4, §2.5), in the v3 style:
request bodies (pydantic models) and query strings (parsed into dataclasses). The only module that
knows the wire names; the service takes what it builds here.

Intervals (usage periods, grant recurrences) take an ISO-8601 duration of at least one hour with
whole minutes (`PT1H`, `P1D`, `P1M`, `P1Y`, `P1DT12H`) or one of the enum names DAY / WEEK / MONTH /
YEAR; both are normalised to the ISO form. Amounts take a number or a decimal string, never negative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

from shared.api.params import Page, page_params
from shared.api.validation import Rfc3339, validate_model
from shared.core.durations import MAX_YEARS, longer_than_max
from shared.core.errors import InvalidInput, Source
from shared.core.timeutil import EARLIEST_INSTANT, LATEST_INSTANT, format_rfc3339, parse_rfc3339
from shared.entitlements.models import EntitlementType

ENUM_INTERVALS = {"DAY": "P1D", "WEEK": "P1W", "MONTH": "P1M", "YEAR": "P1Y"}
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
MAX_METADATA = 50
# A static entitlement's config is stored in its item and in each access state (DynamoDB: 400 KB per
# item): 64 KiB of JSON leaves room for everything else.
MAX_CONFIG_BYTES = 64 * 1024
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
    if longer_than_max(text):  # periods are stepped from anchors: a longer one overflows the calendar
        raise ValueError(f"must be at most {MAX_YEARS} years (P{MAX_YEARS}Y)")
    return text


_RANGE = f"must be from {format_rfc3339(EARLIEST_INSTANT)} to before {format_rfc3339(LATEST_INSTANT)}"


def _in_range(value: datetime) -> datetime:
    """Instants stay inside the engine's range (docs/architecture.md "Accepted time range"): periods,
    expirations and recurrences are computed from them, and near year 9999 that overflows (a 500
    after the entitlement or grant was written)."""
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise PydanticCustomError("datetime_parsing", _RANGE)
    return value


# An RFC 3339 date-time inside the engine's range.
Instant = Annotated[Rfc3339, AfterValidator(_in_range)]


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
    anchor: Instant | None = None


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
        if isinstance(value, str):  # checked here: an error in the union would name each branch
            try:
                _in_range(parse_rfc3339(value))
            except ValueError as exc:
                raise PydanticCustomError("datetime_parsing", str(exc)) from None
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
        if len(orjson.dumps(value)) > MAX_CONFIG_BYTES:
            raise PydanticCustomError("too_long", f"must be at most {MAX_CONFIG_BYTES} bytes as JSON")
        return value


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_at: Instant | None = None
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
    anchor: Instant | None = None


class CreateGrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    priority: Priority = 1
    effective_at: Instant
    expiration: ExpirationRequest | None = None
    min_rollover_amount: Amount | None = None
    max_rollover_amount: Amount | None = None
    recurrence: RecurrenceRequest | None = None
    metadata: Metadata = None


class VoidGrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Instant | None = None


# -- bodies -------------------------------------------------------------------------------------
def create_entitlement(body: Any) -> CreateEntitlementRequest:
    return validate_model(CreateEntitlementRequest, body)


def create_grant(body: Any) -> CreateGrantRequest:
    return validate_model(CreateGrantRequest, body)


def reset(body: Any | None) -> ResetRequest:
    """The body is optional: none means "reset now, with the entitlement's defaults"."""
    return validate_model(ResetRequest, body if body is not None else {})


def void_grant(body: Any | None) -> VoidGrantRequest:
    return validate_model(VoidGrantRequest, body if body is not None else {})


# -- query strings ------------------------------------------------------------------------------
WINDOW_SIZES = {"PT1M": "PT1M", "PT1H": "PT1H", "P1D": "P1D", "P1M": "P1M"}
WINDOW_ALIASES = {"MINUTE": "PT1M", "HOUR": "PT1H", "DAY": "P1D", "MONTH": "P1M"}


def _time(params: dict[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        at = parse_rfc3339(raw)
    except ValueError as exc:
        raise InvalidInput.field(name, str(exc), "date_time", "query") from None
    if not EARLIEST_INSTANT <= at < LATEST_INSTANT:  # as the bodies' instants (`_in_range`)
        raise InvalidInput.field(name, _RANGE, "date_time", "query")
    return at


@dataclass(frozen=True)
class ListEntitlementsQuery:
    page: Page
    feature_key: str | None = None
    type: EntitlementType | None = None


def list_entitlements(params: dict[str, str] | None) -> ListEntitlementsQuery:
    params = params or {}
    page = page_params(params)
    kind = params.get("filter[type]")
    if kind is not None and kind not in {t.value for t in EntitlementType}:
        raise InvalidInput.field("filter[type]", "must be metered, boolean or static", "enum", "query")
    return ListEntitlementsQuery(
        page, params.get("filter[feature_key]"), EntitlementType(kind) if kind else None
    )


@dataclass(frozen=True)
class ValueQuery:
    at: datetime | None = None  # None: now


def value(params: dict[str, str] | None) -> ValueQuery:
    return ValueQuery(_time(params or {}, "time"))


@dataclass(frozen=True)
class HistoryQuery:
    # Rules that need the entitlement (bounds against measure_usage_from) are checked by the
    # service; it names these fields, and SOURCE says where they came from.
    SOURCE: ClassVar[Source] = "query"

    window_size: str  # ISO form: PT1M, PT1H, P1D or P1M
    time_zone: ZoneInfo
    start: datetime | None = None  # `from`; None: the current usage period's start
    end: datetime | None = None  # `to`; None: now


def history(params: dict[str, str] | None) -> HistoryQuery:
    params = params or {}
    raw_size = params.get("window_size")
    if raw_size is None:
        raise InvalidInput.field("window_size", "is required: PT1M, PT1H, P1D or P1M", "required", "query")
    size = WINDOW_SIZES.get(raw_size) or WINDOW_ALIASES.get(raw_size.upper())
    if size is None:
        raise InvalidInput.field("window_size", "must be PT1M, PT1H, P1D or P1M", "enum", "query")
    try:
        tz = ZoneInfo(params.get("window_time_zone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput.field("window_time_zone", "unknown IANA time zone", "enum", "query") from None
    return HistoryQuery(size, tz, _time(params, "from"), _time(params, "to"))


@dataclass(frozen=True)
class ListGrantsQuery:
    page: Page
    include_voided: bool = True


def list_grants(params: dict[str, str] | None) -> ListGrantsQuery:
    params = params or {}
    page = page_params(params)
    include_voided = params.get("include_voided", "true")
    if include_voided not in ("true", "false"):
        raise InvalidInput.field("include_voided", "must be true or false", "enum", "query")
    return ListGrantsQuery(page, include_voided == "true")
