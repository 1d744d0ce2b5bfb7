"""Notification events in the API: list (filters + page pagination), get, resend, rule test.

Resend and test only write deliveries due now; the notify function's retry sweep (every minute on
AWS, every few seconds locally) sends them, so the API function never calls customer endpoints.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.api.params import nested, page_params
from shared.api.problem import BadRequest, NotFound
from shared.api.validation import validate_model
from shared.core.timeutil import Clock, format_rfc3339, parse_rfc3339
from shared.notifications.engine import build_event
from shared.notifications.models import Rule, RuleType
from shared.notifications.repository import NotificationConfigRepository
from shared.notifications.store import Emission, NotificationEvent, NotificationStore

TEST_ANNOTATION = "notification.rule.test"
ID_FILTERS = {"rule_id": "rule", "channel_id": "channel", "customer_id": "customer", "feature": "feature"}
TIME_OPS = ("gte", "lte")


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: list[str] | None = Field(default=None, min_length=1, max_length=5)


def _values(name: str, spec: Any) -> set[str]:
    """`filter[x]=a` or `filter[x][eq]=a` or `filter[x][oeq]=a,b`."""
    if isinstance(spec, str):
        return {spec}
    if len(spec) == 1:
        op, value = next(iter(spec.items()))
        if op in ("eq", "oeq") and isinstance(value, str):
            return {v for v in value.split(",") if v} if op == "oeq" else {value}
    raise BadRequest.field(f"filter[{name}]", "use filter[...]=value, [eq] or [oeq]", "invalid", "query")


def _matches(event: NotificationEvent, field: str, wanted: set[str]) -> bool:
    if field == "rule_id":
        return event.rule.get("id") in wanted
    if field == "channel_id":
        return bool(set(event.channel_ids) & wanted)
    if field == "customer_id":
        return event.customer_id in wanted
    return bool({event.feature_id, event.feature_key} & wanted)


def sample_data(rule: Rule) -> dict[str, Any]:
    """A realistic payload for the rule's type (the test action sends it for real)."""
    period = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    feature_key = rule.features[0] if rule.features else "example_feature"
    entitlement = {
        "id": "01JTESTENT0000000000000000",
        "type": "metered",
        "feature_key": feature_key,
        "is_soft_limit": False,
    }
    value = {
        "has_access": True,
        "balance": "10",
        "usage": "90",
        "overage": "0",
        "total_available_grant_amount": "100",
        "current_usage_period": period,
    }
    base = {
        "entitlement": entitlement,
        "feature": {"id": "01JTESTFEA0000000000000000", "key": feature_key},
        "customer": {"id": "01JTESTCUS0000000000000000"},
        "value": value,
    }
    if rule.type is RuleType.BALANCE_THRESHOLD:
        threshold = (
            rule.thresholds[0].to_api() if rule.thresholds else {"value": "80", "type": "usage_percentage"}
        )
        return {**base, "threshold": threshold}
    if rule.type is RuleType.ENTITLEMENT_RESET:
        return base
    return {
        "id": "01JTESTINV0000000000000000",
        "number": "TEST-0001",
        "status": "issued",
        "currency": "USD",
        "customer": {"id": "01JTESTCUS0000000000000000"},
        "totals": {"amount": "100.00", "total": "100.00"},
    }


class NotificationEventService:
    def __init__(
        self, store: NotificationStore, config: NotificationConfigRepository, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or Clock()

    def get(self, event_id: str) -> NotificationEvent:
        event = self.store.get(event_id)
        if event is None:
            raise NotFound(f"Notification event [{event_id}] not found")
        return event

    def list(self, params: dict[str, str] | None) -> dict[str, Any]:
        page = page_params(params)
        filters = nested(params, "filter")
        start = end = None
        for name, spec in filters.items():
            if name == "created_at":
                if isinstance(spec, str) or set(spec) - set(TIME_OPS):
                    raise BadRequest.field("filter[created_at]", "use [gte] and/or [lte]", "invalid", "query")
                try:
                    start = parse_rfc3339(spec["gte"]) if "gte" in spec else None
                    end = parse_rfc3339(spec["lte"]) if "lte" in spec else None
                except ValueError as exc:
                    raise BadRequest.field("filter[created_at]", str(exc), "is_date_time", "query") from None
            elif name not in ID_FILTERS:
                supported = ", ".join(("created_at", *ID_FILTERS))
                raise BadRequest.field(
                    f"filter[{name}]", f"unknown filter; supported: {supported}", "unknown_property", "query"
                )
        wanted = {name: _values(name, spec) for name, spec in filters.items() if name in ID_FILTERS}
        heads = [
            e for e in self.store.list_heads(start, end) if all(_matches(e, f, w) for f, w in wanted.items())
        ]
        items = [self.get(e.id).to_api() for e in page.slice(heads)]  # deliveries for the page only
        return page.response(items, len(heads))

    def resend(self, event_id: str, body: Any) -> NotificationEvent:
        req = validate_model(ResendRequest, body if body is not None else {})
        event = self.get(event_id)
        channels = req.channels or event.channel_ids
        for i, cid in enumerate(channels):
            if cid not in event.channel_ids:
                raise BadRequest.field(
                    f"channels[{i}]", f"channel [{cid}] is not a channel of this event", "invalid"
                )
        now = self.clock.now()
        for cid in dict.fromkeys(channels):
            self.store.requeue(event_id, cid, now, f"resend requested at {format_rfc3339(now)}")
        return self.get(event_id)

    def test_rule(self, rule: Rule) -> NotificationEvent:
        channels = [c for cid in rule.channel_ids if (c := self.config.get_channel(cid)) is not None]
        if not channels:
            raise BadRequest.field("channels", "the rule has no existing channel to test", "invalid")
        event = build_event(rule, channels, sample_data(rule), self.clock.now(), {TEST_ANNOTATION: True})
        self.store.create(None, rule.id, [Emission(event)])
        return event
