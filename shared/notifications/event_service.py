"""Notification events in the API: list (filters + page pagination), get, resend, rule test.

Resend and test only write deliveries due now; the notify function's retry sweep (every minute on
AWS, every few seconds locally) sends them, so the API function never calls customer endpoints.
"""

from __future__ import annotations

from typing import Any

from shared.core.errors import InvalidInput, NotFound
from shared.core.listing import Listed
from shared.core.timeutil import Clock, format_rfc3339
from shared.notifications.engine import build_event
from shared.notifications.models import Emission, NotificationEvent, Rule, RuleType
from shared.notifications.repository import NotificationConfigRepository
from shared.notifications.requests import EventsQuery, ResendRequest
from shared.notifications.store import NotificationStore

TEST_ANNOTATION = "notification.rule.test"


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
            rule.thresholds[0].to_payload()
            if rule.thresholds
            else {"value": "80", "type": "usage_percentage"}
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

    def list(self, query: EventsQuery) -> Listed[NotificationEvent]:
        """Newest first; only the page's events are read with their deliveries."""
        heads = [
            e
            for e in self.store.list_heads(query.created_from, query.created_to)
            if all(_matches(e, f, w) for f, w in query.ids.items())
        ]
        return Listed([self.get(e.id) for e in query.page.slice(heads)], len(heads))

    def resend(self, event_id: str, req: ResendRequest) -> NotificationEvent:
        event = self.get(event_id)
        channels = req.channels or event.channel_ids
        for i, cid in enumerate(channels):
            if cid not in event.channel_ids:
                raise InvalidInput.field(
                    f"channels[{i}]", f"channel [{cid}] is not a channel of this event", "invalid"
                )
        now = self.clock.now()
        for cid in dict.fromkeys(channels):
            self.store.requeue(event_id, cid, now, f"resend requested at {format_rfc3339(now)}")
        return self.get(event_id)

    def test_rule(self, rule: Rule) -> NotificationEvent:
        channels = [c for cid in rule.channel_ids if (c := self.config.get_channel(cid)) is not None]
        if not channels:
            raise InvalidInput.field("channels", "the rule has no existing channel to test", "invalid")
        event = build_event(rule, channels, sample_data(rule), self.clock.now(), {TEST_ANNOTATION: True})
        self.store.create(None, rule.id, [Emission(event)])
        return event
