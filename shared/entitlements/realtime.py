"""Keeps each entitlement's stored access state current and emits its domain events.

Called after every batch the aggregate function applies (for the entitlements whose meter and
customer the batch touched), after every entitlement, grant or reset change, and by the
scheduled sweep at usage-period boundaries. A refresh replays only the current usage period, from
the balances snapshotted at its start, unless the change reaches further back (a late event, a
back-dated grant), in which case it replays from the beginning.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import orjson
from aws_lambda_powertools import Logger

from shared.aws.publisher import DomainPublisher
from shared.core.decimals import wire
from shared.core.observability import SERVICE
from shared.core.timeutil import Clock, CustomerClock, WallClock, ceil_minute, format_rfc3339, parse_rfc3339
from shared.entitlements import engine
from shared.entitlements.access import AccessState, AccessStore
from shared.entitlements.convert import to_engine_grants, to_terms
from shared.entitlements.models import Entitlement, EntitlementType, GrantRecord
from shared.entitlements.usage import EntitlementUsage, MeterlessFeature

logger = Logger(service=SERVICE, child=True)

# Fixed ladder of usage thresholds announced as crossed (percent of the total available grant
# amount); notification rules with their own thresholds evaluate every published value.
USAGE_LADDER = (Decimal(50), Decimal(80), Decimal(90), Decimal(100))


class EntitlementSource(Protocol):
    def get(self, entitlement_id: str) -> Entitlement | None: ...
    def grants(self, entitlement_id: str) -> list[GrantRecord]: ...
    def for_meter_customers(self, meter_id: str, customer_ids: Iterable[str]) -> list[Entitlement]: ...


def _snapshot_to_dict(snap: engine.Snapshot) -> dict[str, Any]:
    return {
        "at": format_rfc3339(snap.at),
        "period_start": format_rfc3339(snap.period_start),
        "grant_balances": {k: str(v) for k, v in snap.grant_balances.items()},
        "overage": str(snap.overage),
        "usage": str(snap.usage),
        "grant_usage": str(snap.grant_usage),
        "fingerprint": snap.fingerprint,
    }


def snapshot_from_dict(raw: dict[str, Any]) -> engine.Snapshot:
    return engine.Snapshot(
        at=parse_rfc3339(raw["at"]),
        period_start=parse_rfc3339(raw["period_start"]),
        grant_balances={k: Decimal(v) for k, v in raw["grant_balances"].items()},
        overage=Decimal(raw["overage"]),
        usage=Decimal(raw["usage"]),
        grant_usage=Decimal(raw.get("grant_usage", "0")),
        fingerprint=raw.get("fingerprint", ""),
    )


def usage_percent(state: AccessState) -> Decimal:
    if state.total_available <= 0:
        return Decimal(0)
    return state.usage * 100 / state.total_available


class AccessRefresher:
    def __init__(
        self,
        entitlements: EntitlementSource,
        usage: EntitlementUsage,
        store: AccessStore,
        publisher: DomainPublisher | None,
        clock: Clock | None = None,
        customer_clock: CustomerClock | None = None,
    ) -> None:
        self.entitlements = entitlements
        self.usage = usage
        self.store = store
        self.publisher = publisher
        self.clock = clock or Clock()
        # Every computation runs at its customer's "now": a test clock's time for a bound customer.
        self.customer_clock = customer_clock or WallClock(self.clock)

    # -- entry points ------------------------------------------------------------------------------
    def refresh(
        self,
        ent: Entitlement,
        reason: str,
        invalidate_from: datetime | None = None,
        created_with: list[GrantRecord] | None = None,
    ) -> AccessState | None:
        """Recompute and store one entitlement's state; publish what changed. `created_with`: the
        entitlement was just created with these grants (no stored state or other grants yet)."""
        if ent.deleted_at is not None:
            self.store.delete(ent.customer_id, ent.feature_key, ent.id)
            return None
        started = self.customer_clock.now_for(ent.customer_id)
        previous = None if created_with is not None else self.store.get(ent.customer_id, ent.feature_key)
        if previous is not None and previous.entitlement_id != ent.id:
            previous = None
        state = self._compute(ent, started, previous, invalidate_from, created_with)
        state.test_clock_id = self.customer_clock.clock_of(ent.customer_id)
        # Announce before storing: a crash in between replays the same transition with the same
        # event ids (consumers dedupe), where storing first would lose the event.
        self._announce(ent, previous, state, reason)
        if previous is None or (previous.value(), previous.snapshot) != (state.value(), state.snapshot):
            self.store.put(state)  # (an unchanged state is not rewritten: no write per batch)
        return state

    def refresh_for_usage(self, touched: dict[str, dict[str, datetime]], customers: dict[str, str]) -> int:
        """After a batch: `touched` maps meter id -> {subject: earliest event minute}; `customers`
        maps subject -> customer id. Returns how many entitlements were refreshed."""
        count = 0
        for meter_id, subjects in touched.items():
            earliest: dict[str, datetime] = {}
            for subject, minute in subjects.items():
                customer_id = customers.get(subject)
                if customer_id:
                    earliest[customer_id] = min(minute, earliest.get(customer_id, minute))
            if not earliest:
                continue
            for ent in self.entitlements.for_meter_customers(meter_id, earliest):
                try:
                    self.refresh(ent, "usage", invalidate_from=earliest[ent.customer_id])
                    count += 1
                except MeterlessFeature:  # its meter is gone: nothing to measure, nothing to retry
                    logger.warning("entitlement without a meter", extra={"entitlement_id": ent.id})
                # Anything else propagates: the batch is retried, and a refresh is idempotent.
        return count

    def sweep(self, reconcile: Iterable[Entitlement] | None = None) -> int:
        """Scheduled: every metered entitlement whose usage period has ended gets its reset; found
        through the states' due index. `reconcile` (every metered entitlement, run now and then)
        also catches one whose state was never written (a refresh that failed at creation)."""
        now = self.clock.now()
        # Clock-bound states are not in the due index: their customers' time moves only when
        # their test clock is advanced (shared/testclocks), never with the wall clock.
        due: dict[str, Entitlement | None] = {eid: None for _, eid in self.store.due(now)}
        for ent in reconcile or ():
            if ent.id not in due:
                state = self.store.get(ent.customer_id, ent.feature_key)
                # A missing state is written (at its customer's time); a clock-bound one is current
                # as of its clock, whatever the wall clock says.
                if state is None or (
                    state.test_clock_id is None and (state.period_to is None or state.period_to <= now)
                ):
                    due[ent.id] = ent
        count = 0
        for eid, known in due.items():
            found = known or self.entitlements.get(eid)
            if found is None or found.deleted_at is not None:
                continue
            ent = found
            try:
                self.refresh(ent, "reset")
                count += 1
            except Exception:  # one entitlement must not stop the sweep; the next run retries it
                logger.exception("scheduled refresh failed", extra={"entitlement_id": eid})
        return count

    def run_due(self, customer_ids: Iterable[str], until: datetime) -> tuple[int, datetime | None]:
        """Test clocks: refresh every state of these customers whose usage period ended by `until`
        (their clock reads `until` now). Returns how many were reset and the earliest period end
        still ahead, after `until` (None: nothing scheduled)."""
        count, ahead = 0, None
        for customer_id in customer_ids:
            for state in self.store.states(customer_id):
                if state.period_to is not None and state.period_to <= until:
                    ent = self.entitlements.get(state.entitlement_id)
                    if ent is None or ent.deleted_at is not None:
                        continue
                    new = self.refresh(ent, "reset")
                    count += 1
                    state = new or state
                if state.period_to is not None and state.period_to > until:
                    ahead = state.period_to if ahead is None else min(ahead, state.period_to)
        return count, ahead

    def refresh_states(self, states: list[AccessState]) -> list[AccessState]:
        """Recompute these stored states (their usage period ended): the new ones that exist."""
        fresh = []
        for state in states:
            ent = self.entitlements.get(state.entitlement_id)
            if ent is not None and (new := self.refresh(ent, "reset")) is not None:
                fresh.append(new)
        return fresh

    # -- computation ------------------------------------------------------------------------------

    def _compute(
        self,
        ent: Entitlement,
        now: datetime,
        previous: AccessState | None,
        invalidate_from: datetime | None,
        known_grants: list[GrantRecord] | None = None,
    ) -> AccessState:
        base = AccessState(
            customer_id=ent.customer_id,
            feature_key=ent.feature_key,
            feature_id=ent.feature_id,
            entitlement_id=ent.id,
            type=ent.type.value,
            has_access=True,
            computed_at=now,
        )
        if ent.type == EntitlementType.STATIC:
            base.config = orjson.dumps(ent.config or {}).decode()
            return base
        if ent.type == EntitlementType.BOOLEAN:
            return base
        usage_fn, kind = self.usage.usage_fn(ent)
        terms = to_terms(ent, kind)
        grants = to_engine_grants(self.entitlements.grants(ent.id) if known_grants is None else known_grants)
        snapshot = None
        if previous is not None and previous.snapshot:
            snap = snapshot_from_dict(previous.snapshot)
            if invalidate_from is None or invalidate_from >= snap.at:
                snapshot = snap
        # A read at t includes the minute that contains t (engine-rules §2.4 time resolution).
        at = ceil_minute(now + timedelta(microseconds=1))
        period = engine.period_at(terms, max(at - timedelta(microseconds=1), terms.measure_usage_from))
        # The balances at the current period's start: the next refresh replays only from there.
        reusable = snapshot if snapshot is not None and snapshot.at <= period[0] else None
        start_snap = engine.snapshot_at(terms, grants, usage_fn, period[0], snapshot=reusable)
        value = engine.value_at(terms, grants, usage_fn, at, snapshot=start_snap)
        base.snapshot = _snapshot_to_dict(start_snap)
        base.period_from, base.period_to = value.current_period
        base.has_access = value.has_access
        base.balance, base.usage, base.overage = value.balance, value.usage, value.overage
        base.total_available = value.total_available_grant_amount
        base.grant_balances = dict(value.grant_balances)
        base.last_reset = value.last_reset
        return base

    # -- domain events ----------------------------------------------------------------------------
    def _announce(
        self, ent: Entitlement, previous: AccessState | None, state: AccessState, reason: str
    ) -> None:
        if self.publisher is None or ent.type != EntitlementType.METERED:
            return
        subject = {
            "entitlement": {
                "id": ent.id,
                "type": ent.type.value,
                "feature_key": ent.feature_key,
                "is_soft_limit": ent.is_soft_limit,
            },
            "customer": {"id": ent.customer_id},
            "feature": {"id": ent.feature_id, "key": ent.feature_key},
        }
        now = state.computed_at
        before = previous.value() if previous else None
        after = state.value()
        if (
            previous is not None
            and previous.period_from is not None
            and previous.period_from != state.period_from
        ):
            self.publisher.publish(
                "entitlements.reset",
                {**subject, "value": after, "previous_period_usage": wire(previous.usage)},
                now,
                event_id=_event_id("entitlements.reset", ent.id, after["current_usage_period"]),
            )
        if before == after:
            return
        crossed = []
        if previous is None or previous.period_from == state.period_from:
            was = usage_percent(previous) if previous else Decimal(0)
            now_pct = usage_percent(state)
            crossed = [f"usage_percentage:{t}" for t in USAGE_LADDER if was < t <= now_pct]
        if previous is not None and previous.has_access != state.has_access:
            crossed.append("access_granted" if state.has_access else "access_revoked")
        self.publisher.publish(
            "entitlements.balance.updated",
            {**subject, "value": after, "previous": before, "crossed": crossed, "reason": reason},
            now,
            event_id=_event_id("entitlements.balance.updated", ent.id, before, after),
        )


def _event_id(*parts: Any) -> str:
    """The same transition always gets the same id, so a replayed refresh is deduped downstream."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
