"""Notification domain types: channels and rules (config table), notification events with their
deliveries and attempts, threshold state (notifications table). Wire shapes: `requests.py` (in),
`views.py` (out); persistence: `repository.py` (config table), `store.py` (notifications table).

Threshold values are decimals (accepted as JSON numbers or decimal strings, returned as decimal
strings like every amount in v3) and never pass through float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

MAX_CHANNELS_PER_RULE = 5
MAX_THRESHOLDS = 10
MAX_CUSTOM_HEADERS = 20
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
# Headers we set ourselves: a custom header must not forge a signature or break the framing.
RESERVED_HEADERS = ("webhook-", "svix-", "content-type", "content-length", "host", "user-agent")
# A custom header is sent as written: its name must be an RFC 9110 token and its value visible ASCII,
# spaces and tabs. Anything else (a CR/LF smuggling another header, a space in a name, a character
# outside Latin-1) is refused by the HTTP client at every delivery attempt.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]{0,4096}$")


def header_problem(name: str, value: str) -> str | None:
    """Why a custom header can't be sent, or None."""
    if not _HEADER_NAME.match(name):
        return "header name must be 1-256 characters of letters, digits and !#$%&'*+.^_`|~-"
    if not _HEADER_VALUE.match(value):
        return "header value must be at most 4096 printable ASCII characters (no line breaks)"
    return None


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


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    type: ThresholdType

    def to_payload(self) -> dict[str, str]:
        """As webhook payloads, threshold state and the API show it (value a decimal string)."""
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

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type.value, "name": self.name}


# -- notification events and their deliveries (notifications table) ---------------------------
class State:
    PENDING = "PENDING"
    SENDING = "SENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass
class Attempt:
    state: str
    timestamp: datetime
    status_code: int | None
    duration_ms: int
    body: str
    url: str | None = None


@dataclass
class Delivery:
    event_id: str
    channel_id: str
    channel: dict[str, Any]  # summary {id, type, name} at creation
    state: str
    updated_at: datetime
    window_start: datetime  # the retry window (24 h) counts from here; a resend restarts it
    attempt_count: int = 0
    next_attempt: datetime | None = None
    reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class NotificationEvent:
    id: str
    type: str
    created_at: datetime
    rule: dict[str, Any]
    payload: dict[str, Any]
    channel_ids: list[str]
    annotations: dict[str, Any] = field(default_factory=dict)
    feature_id: str | None = None
    feature_key: str | None = None
    customer_id: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)

    def payload_bytes(self) -> bytes:
        return orjson.dumps(self.payload)


@dataclass(frozen=True)
class ThresholdState:
    """The last threshold emitted for a (rule, entitlement, feature, period, kind) key."""

    pk: str
    sk: str
    threshold: dict[str, str] | None  # {value, type} or None if never emitted
    as_of: datetime | None


@dataclass
class Emission:
    """One event to create, with (for threshold rules) the state it moves from and to."""

    event: NotificationEvent
    state: ThresholdState | None = None
    new_threshold: dict[str, str] | None = None
    as_of: datetime | None = None
