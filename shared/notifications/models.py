"""Channels and rules: domain values, API shapes and request models.

Threshold values are decimals (accepted as JSON numbers or decimal strings, returned as decimal
strings like every amount in v3) and never pass through float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from shared.core.labels import check_labels
from shared.core.timeutil import format_rfc3339

MAX_CHANNELS_PER_RULE = 5
MAX_THRESHOLDS = 10
MAX_CUSTOM_HEADERS = 20
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
# Headers we set ourselves: a custom header must not forge a signature or break the framing.
RESERVED_HEADERS = ("webhook-", "svix-", "content-type", "content-length", "host", "user-agent")


class ChannelType(StrEnum):
    WEBHOOK = "webhook"
    SNS = "sns"


class RuleType(StrEnum):
    BALANCE_THRESHOLD = "entitlements.balance.threshold"
    ENTITLEMENT_RESET = "entitlements.reset"
    INVOICE_CREATED = "invoice.created"
    INVOICE_UPDATED = "invoice.updated"


class ThresholdType(StrEnum):
    USAGE_VALUE = "usage_value"
    USAGE_PERCENTAGE = "usage_percentage"
    BALANCE_VALUE = "balance_value"


# Deprecated OpenMeter spellings, accepted on input.
THRESHOLD_ALIASES = {"NUMBER": "usage_value", "PERCENT": "usage_percentage"}


def _decimal_input(value: Any) -> Any:
    # Body numbers arrive as Decimal (routes parse JSON with parse_float=Decimal); strings are checked too.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    return value


DecimalStr = Annotated[str, BeforeValidator(_decimal_input), Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]


class WebhookChannelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook"]
    name: str = Field(min_length=1, max_length=256)
    disabled: bool = False
    url: str = Field(min_length=1, max_length=2048)
    custom_headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_CUSTOM_HEADERS)
    signing_secret: str | None = Field(default=None, pattern=r"^(whsec_)?[a-zA-Z0-9+/=]{32,100}$")
    labels: Labels = None


class SnsChannelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["sns"]
    name: str = Field(min_length=1, max_length=256)
    disabled: bool = False
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
    disabled: bool = False
    channels: list[str] = Field(min_length=1, max_length=MAX_CHANNELS_PER_RULE)
    thresholds: list[ThresholdRequest] | None = Field(default=None, min_length=1, max_length=MAX_THRESHOLDS)
    features: list[str] | None = Field(default=None, max_length=100)
    labels: Labels = None


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    type: ThresholdType

    def to_api(self) -> dict[str, Any]:
        return {"value": format(self.value, "f"), "type": self.type.value}


@dataclass
class Channel:
    id: str
    type: ChannelType
    name: str
    created_at: datetime
    updated_at: datetime
    disabled: bool = False
    url: str | None = None
    custom_headers: dict[str, str] = field(default_factory=dict)
    signing_secret: str | None = None
    topic_arn: str | None = None
    labels: dict[str, str] | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "name": self.name,
            "disabled": self.disabled,
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
        }
        if self.type is ChannelType.WEBHOOK:
            body.update(url=self.url, custom_headers=self.custom_headers, signing_secret=self.signing_secret)
        else:
            body["topic_arn"] = self.topic_arn
        if self.labels is not None:
            body["labels"] = self.labels
        return body

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type.value, "name": self.name}


@dataclass
class Rule:
    id: str
    type: RuleType
    name: str
    channel_ids: list[str]
    created_at: datetime
    updated_at: datetime
    disabled: bool = False
    thresholds: list[Threshold] = field(default_factory=list)
    features: list[str] | None = None  # feature ids or keys; None = every feature
    labels: dict[str, str] | None = None

    def matches_feature(self, feature: dict[str, Any]) -> bool:
        if not self.features:
            return True
        return feature.get("id") in self.features or feature.get("key") in self.features

    def to_api(self, channels: dict[str, Channel] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "name": self.name,
            "disabled": self.disabled,
            "channels": [
                channels[c].summary() if channels and c in channels else {"id": c} for c in self.channel_ids
            ],
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
        }
        if self.type is RuleType.BALANCE_THRESHOLD:
            body["thresholds"] = [t.to_api() for t in self.thresholds]
        if self.type in (RuleType.BALANCE_THRESHOLD, RuleType.ENTITLEMENT_RESET) and self.features:
            body["features"] = list(self.features)
        if self.labels is not None:
            body["labels"] = self.labels
        return body

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type.value, "name": self.name}
