"""Typed inputs of the notification endpoints: channel, rule and resend bodies (pydantic) and the
list query strings. The only module that knows the wire names.

Threshold values are decimals (accepted as JSON numbers or decimal strings) and never pass through
float: bodies are parsed with `parse_float=Decimal`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from shared.api.params import Page, StringFilter, nested, page_params, string_filters
from shared.api.validation import parse_json_body, validate_model
from shared.core.errors import InvalidInput
from shared.core.labels import check_labels
from shared.core.timeutil import parse_rfc3339
from shared.notifications.models import (
    MAX_CHANNELS_PER_RULE,
    MAX_CUSTOM_HEADERS,
    MAX_THRESHOLDS,
    SNS_TOPIC_ARN,
    THRESHOLD_ALIASES,
    ChannelType,
    RuleType,
    ThresholdType,
)


def _decimal_input(value: Any) -> Any:
    # Body numbers arrive as Decimal (routes parse JSON with parse_float=Decimal); strings are checked too.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    return value


def _digits(value: str) -> str:
    # DynamoDB numbers carry 38 significant digits; an unbounded string also overflowed the rule's item.
    if len(Decimal(value).as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"must have at most {MAX_DIGITS} digits")
    return value


MAX_DIGITS = 38
DecimalStr = Annotated[
    str,
    BeforeValidator(_decimal_input),
    Field(pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=2 * MAX_DIGITS + 1),
    AfterValidator(_digits),
]
# A rule's `features` are feature ids or keys (keys are 64 characters at most).
FeatureRef = Annotated[str, Field(min_length=1, max_length=64)]
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]


class WebhookChannelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook"]
    name: str = Field(min_length=1, max_length=256)
    disabled: StrictBool = False  # "yes" or 1 is not a boolean (pydantic's lax mode takes them)
    url: str = Field(min_length=1, max_length=2048)
    custom_headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_CUSTOM_HEADERS)
    signing_secret: str | None = Field(default=None, pattern=r"^(whsec_)?[a-zA-Z0-9+/=]{32,100}$")
    labels: Labels = None


class SnsChannelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["sns"]
    name: str = Field(min_length=1, max_length=256)
    disabled: StrictBool = False
    topic_arn: str = Field(pattern=SNS_TOPIC_ARN)
    labels: Labels = None


class ThresholdRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: DecimalStr
    type: Annotated[ThresholdType, BeforeValidator(lambda v: THRESHOLD_ALIASES.get(v, v))]


class RuleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: RuleType
    name: str = Field(min_length=1, max_length=256)
    disabled: StrictBool = False
    channels: list[str] = Field(min_length=1, max_length=MAX_CHANNELS_PER_RULE)
    thresholds: list[ThresholdRequest] | None = Field(default=None, min_length=1, max_length=MAX_THRESHOLDS)
    features: list[FeatureRef] | None = Field(default=None, max_length=100)
    labels: Labels = None


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[str] | None = Field(default=None, min_length=1, max_length=5)


ChannelRequest = WebhookChannelRequest | SnsChannelRequest
CHANNEL_MODELS: dict[str, type[WebhookChannelRequest] | type[SnsChannelRequest]] = {
    ChannelType.WEBHOOK.value: WebhookChannelRequest,
    ChannelType.SNS.value: SnsChannelRequest,
}


# -- bodies -------------------------------------------------------------------------------------
def decimal_json(raw: str | None, optional: bool = False) -> Any:
    """The JSON body with numbers as Decimal (threshold values never pass through float)."""
    if optional and not raw:
        return None
    parse_json_body(raw)  # problem+json for a missing / malformed body
    assert raw is not None
    return json.loads(raw, parse_float=Decimal)


def channel(body: Any) -> ChannelRequest:
    """A webhook or SNS channel, by its `type`."""
    if not isinstance(body, dict):
        raise InvalidInput.field("body", "must be a JSON object", "is_object")
    kind = body.get("type")
    if kind is None:
        raise InvalidInput.field("type", f"is required: one of {', '.join(CHANNEL_MODELS)}", "required")
    if kind not in CHANNEL_MODELS:
        choices = tuple(CHANNEL_MODELS)
        raise InvalidInput.field("type", f"must be one of {', '.join(choices)}", "enum", choices=choices)
    return validate_model(CHANNEL_MODELS[kind], body)


def rule(body: Any) -> RuleRequest:
    return validate_model(RuleRequest, body)


def resend(body: Any | None) -> ResendRequest:
    return validate_model(ResendRequest, body if body is not None else {})


# -- query strings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListQuery:
    """Channels and rules: page, `filter[name|type][op]` and `sort`."""

    page: Page
    filters: list[StringFilter] = field(default_factory=list)
    sort: str | None = None


def list_query(params: dict[str, str] | None) -> ListQuery:
    return ListQuery(
        page_params(params), string_filters(params, ("name", "type")), (params or {}).get("sort")
    )


ID_FILTERS = ("rule_id", "channel_id", "customer_id", "feature")
TIME_OPS = ("gte", "lte")


@dataclass(frozen=True)
class EventsQuery:
    page: Page
    created_from: datetime | None = None  # filter[created_at][gte]
    created_to: datetime | None = None  # filter[created_at][lte]
    ids: dict[str, set[str]] = field(default_factory=dict)  # ID_FILTERS name -> accepted values


def _values(name: str, spec: Any) -> set[str]:
    """`filter[x]=a` or `filter[x][eq]=a` or `filter[x][oeq]=a,b`."""
    if isinstance(spec, str):
        return {spec}
    if len(spec) == 1:
        op, value = next(iter(spec.items()))
        if op in ("eq", "oeq") and isinstance(value, str):
            return {v for v in value.split(",") if v} if op == "oeq" else {value}
    raise InvalidInput.field(f"filter[{name}]", "use filter[...]=value, [eq] or [oeq]", "invalid", "query")


def events_query(params: dict[str, str] | None) -> EventsQuery:
    page = page_params(params)
    filters = nested(params, "filter")
    start = end = None
    for name, spec in filters.items():
        if name == "created_at":
            if isinstance(spec, str) or set(spec) - set(TIME_OPS):
                raise InvalidInput.field("filter[created_at]", "use [gte] and/or [lte]", "invalid", "query")
            try:
                start = parse_rfc3339(spec["gte"]) if "gte" in spec else None
                end = parse_rfc3339(spec["lte"]) if "lte" in spec else None
            except ValueError as exc:
                raise InvalidInput.field("filter[created_at]", str(exc), "is_date_time", "query") from None
        elif name not in ID_FILTERS:
            supported = ", ".join(("created_at", *ID_FILTERS))
            raise InvalidInput.field(
                f"filter[{name}]", f"unknown filter; supported: {supported}", "unknown_property", "query"
            )
    ids = {name: _values(name, spec) for name, spec in filters.items() if name in ID_FILTERS}
    return EventsQuery(page, start, end, ids)
