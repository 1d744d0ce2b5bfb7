"""Domain events -> notification events (engine rules §2.10).

- `entitlements.balance.updated` -> `entitlements.balance.threshold` rules (metered entitlements
  only, optional feature scope): one event per kind whose most advanced active threshold differs
  from the last one emitted for (rule, entitlement, feature, usage period, kind). A new usage
  period is a new key, so thresholds fire again. A snapshot older than the state's is ignored
  (SNS does not order messages).
- `entitlements.reset` -> `entitlements.reset` rules; `invoice.created` / `invoice.updated` -> rules
  of the same type, payload data = the invoice.

Each (domain event, rule) is written in one transaction with a dedupe claim keyed on both, so a
redelivered domain event never produces a second notification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.core.ids import new_id
from shared.core.timeutil import Clock, format_rfc3339, parse_rfc3339
from shared.notifications.models import Channel, Delivery, Emission, NotificationEvent, Rule, RuleType, State
from shared.notifications.repository import NotificationConfigRepository
from shared.notifications.store import Duplicate, NotificationStore, StateRace
from shared.notifications.thresholds import Snapshot, most_advanced

log = logging.getLogger(__name__)

RULES_FOR = {
    "entitlements.balance.updated": RuleType.BALANCE_THRESHOLD,
    "entitlements.reset": RuleType.ENTITLEMENT_RESET,
    "invoice.created": RuleType.INVOICE_CREATED,
    "invoice.updated": RuleType.INVOICE_UPDATED,
}
STATE_RETRIES = 3


def build_event(
    rule: Rule,
    channels: list[Channel],
    data: dict[str, Any],
    now: datetime,
    annotations: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> NotificationEvent:
    event_id = event_id or new_id()
    feature = data.get("feature") or {}
    customer = data.get("customer") or {}
    event = NotificationEvent(
        id=event_id,
        type=rule.type.value,
        created_at=now,
        rule=rule.summary(),
        payload={"id": event_id, "type": rule.type.value, "timestamp": format_rfc3339(now), "data": data},
        channel_ids=[c.id for c in channels],
        annotations=annotations or {},
        feature_id=feature.get("id"),
        feature_key=feature.get("key"),
        customer_id=customer.get("id"),
    )
    event.deliveries = [
        Delivery(event_id, c.id, c.summary(), State.PENDING, now, now, next_attempt=now) for c in channels
    ]
    return event


class Engine:
    def __init__(
        self,
        config: NotificationConfigRepository,
        store: NotificationStore,
        clock: Clock | None = None,
        id_factory: Callable[[], str] = new_id,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock or Clock()
        self.new_id = id_factory

    def handle(self, domain: dict[str, Any]) -> list[NotificationEvent]:
        rule_type = RULES_FOR.get(str(domain.get("type")))
        if rule_type is None:
            return []
        all_rules, all_channels = self.config.active_config()
        rules = [r for r in all_rules if r.type is rule_type and not r.disabled]
        if not rules:
            return []
        channels = {c.id: c for c in all_channels}
        created: list[NotificationEvent] = []
        for rule in rules:
            targets = [channels[c] for c in rule.channel_ids if c in channels and not channels[c].disabled]
            if targets:
                created += self._for_rule(rule, targets, domain)
        return created

    def _for_rule(
        self, rule: Rule, targets: list[Channel], domain: dict[str, Any]
    ) -> list[NotificationEvent]:
        for _ in range(STATE_RETRIES):
            emissions = self._emissions(rule, targets, domain)
            if not emissions:
                return []
            try:
                self.store.create(str(domain["id"]), rule.id, emissions)
            except Duplicate:
                log.info("domain event %s already notified for rule %s", domain["id"], rule.id)
                return []
            except StateRace:
                continue  # a concurrent snapshot moved the state: evaluate again
            return [e.event for e in emissions]
        log.warning("threshold state of rule %s kept changing; giving up on %s", rule.id, domain["id"])
        return []

    def _emissions(self, rule: Rule, targets: list[Channel], domain: dict[str, Any]) -> list[Emission]:
        data = domain.get("data") or {}
        now = self.clock.now()
        if rule.type is RuleType.BALANCE_THRESHOLD:
            return self._thresholds(rule, targets, domain, now)
        if rule.type is RuleType.ENTITLEMENT_RESET:
            if not _metered(data) or not rule.matches_feature(data.get("feature") or {}):
                return []
            payload = {k: data.get(k) for k in ("entitlement", "feature", "customer", "value")}
            return [Emission(build_event(rule, targets, payload, now, event_id=self.new_id()))]
        return [Emission(build_event(rule, targets, data, now, event_id=self.new_id()))]  # invoices

    def _thresholds(
        self, rule: Rule, targets: list[Channel], domain: dict[str, Any], now: datetime
    ) -> list[Emission]:
        data = domain.get("data") or {}
        feature = data.get("feature") or {}
        if not _metered(data) or not rule.matches_feature(feature):
            return []
        value = data.get("value") or {}
        snap = Snapshot(
            usage=Decimal(str(value.get("usage", "0"))),
            balance=Decimal(str(value.get("balance", "0"))),
            total_available=Decimal(str(value.get("total_available_grant_amount", "0"))),
        )
        as_of = parse_rfc3339(domain["time"]) if domain.get("time") else now
        period = (value.get("current_usage_period") or {}).get("from") or "none"
        pk = f"TSTATE#{rule.id}#{data['entitlement']['id']}#{feature.get('id', '')}"
        emissions: list[Emission] = []
        for kind, pick in sorted(most_advanced(rule.thresholds, snap).items()):
            state = self.store.threshold_state(pk, f"{period}#{kind.value}")
            if state.as_of is not None and state.as_of > as_of:
                continue  # an older snapshot delivered late
            picked = pick.to_payload()
            if state.threshold == picked:
                continue  # fire once per key
            payload = {
                "entitlement": data.get("entitlement"),
                "feature": feature,
                "customer": data.get("customer"),
                "value": value,
                "threshold": picked,
            }
            event = build_event(rule, targets, payload, now, event_id=self.new_id())
            emissions.append(Emission(event, state, picked, as_of))
        return emissions


def _metered(data: dict[str, Any]) -> bool:
    return (data.get("entitlement") or {}).get("type") == "metered"
