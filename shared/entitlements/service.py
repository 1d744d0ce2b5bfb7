"""Entitlement and grant use cases (engine-rules §2.4-2.5): typed inputs in (`requests.py`), domain
objects out (`models.py`, rendered by `views.py`), domain errors (`shared.core.errors`) raised.

Every instant an entitlement works with (measure_usage_from, anchors, grant effective_at, resets,
voids) is truncated to the minute. Each change refreshes the stored access state right away (and
so publishes its domain events), invalidating snapshots from the change's effective time.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta

from shared.core import durations
from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.ids import is_ulid, new_id
from shared.core.listing import Listed
from shared.core.timeutil import Clock, CustomerClock, WallClock, ceil_minute, floor_minute, format_rfc3339
from shared.customers.service import CustomerService
from shared.entitlements import engine
from shared.entitlements.access import AccessState, AccessStore
from shared.entitlements.convert import to_engine_grants, to_terms
from shared.entitlements.models import (
    ENTITLEMENT_AGGREGATIONS,
    CurrentEntitlement,
    CurrentGrant,
    Entitlement,
    EntitlementType,
    GrantRecord,
    History,
    Period,
    PlainAccess,
    ResetRecord,
    WindowUsage,
)
from shared.entitlements.realtime import AccessRefresher, snapshot_from_dict
from shared.entitlements.repository import (
    AlreadyVoided,
    ClaimTaken,
    EntitlementGone,
    EntitlementRepository,
    ResetConflict,
)
from shared.entitlements.requests import (
    CreateEntitlementRequest,
    CreateGrantRequest,
    HistoryQuery,
    ListEntitlementsQuery,
    ListGrantsQuery,
    MeasureUsageFrom,
    ResetRequest,
    ValueQuery,
    VoidGrantRequest,
)
from shared.entitlements.usage import EntitlementUsage
from shared.features.service import FeatureService
from shared.usage.windows import windows

MAX_HISTORY_WINDOWS = 1000
EXPIRATION_STEPS = {
    "HOUR": relativedelta(hours=1),
    "DAY": relativedelta(days=1),
    "WEEK": relativedelta(weeks=1),
    "MONTH": relativedelta(months=1),
    "YEAR": relativedelta(years=1),
}


class EntitlementService:
    def __init__(
        self,
        repo: EntitlementRepository,
        customers: CustomerService,
        features: FeatureService,
        usage: EntitlementUsage,
        store: AccessStore,
        refresher: AccessRefresher,
        clock: Clock | None = None,
        customer_clock: CustomerClock | None = None,
    ) -> None:
        self.repo = repo
        self.customers = customers
        self.features = features
        self.usage = usage
        self.store = store
        self.refresher = refresher
        self.clock = clock or Clock()
        # "Now" per customer: a test clock's frozen time for a customer created on one.
        self.customer_clock = customer_clock or WallClock(self.clock)

    def _now(self, customer_id: str) -> datetime:
        return self.customer_clock.now_for(customer_id)

    # -- lookups ---------------------------------------------------------------------------------
    def _customer_id(self, customer: str) -> str:
        return self.customers.get(customer).id

    def find(self, customer: str, id_or_feature_key: str) -> Entitlement:
        """The customer's entitlement by id (deleted ones too), or its active one for a feature key."""
        customer_id = self._customer_id(customer)
        if is_ulid(id_or_feature_key):
            ent = self.repo.get(id_or_feature_key)
            if ent is not None and ent.customer_id == customer_id:
                return ent
        active = self.repo.for_customer(customer_id, id_or_feature_key)
        if active:
            return active[0]
        raise NotFound(f"Entitlement [{id_or_feature_key}] not found for customer [{customer}]")

    def _metered(self, customer: str, id_or_feature_key: str) -> Entitlement:
        ent = self.find(customer, id_or_feature_key)
        if ent.deleted_at is not None:
            raise NotFound(f"Entitlement [{id_or_feature_key}] was deleted")
        if ent.type != EntitlementType.METERED:
            raise InvalidInput(
                f"Entitlement [{ent.id}] is {ent.type.value}: only metered entitlements have this"
            )
        return ent

    def _terms(self, ent: Entitlement) -> tuple[engine.Terms, engine.UsageFn]:
        usage_fn, kind = self.usage.usage_fn(ent)
        return to_terms(ent, kind), usage_fn

    def current_period(self, ent: Entitlement, at: datetime | None = None) -> Period:
        terms = to_terms(ent)
        t = max(at or self._now(ent.customer_id), terms.measure_usage_from)
        return engine.period_at(terms, t)

    # -- entitlements ----------------------------------------------------------------------------
    def create(self, customer: str, req: CreateEntitlementRequest) -> CurrentEntitlement:
        customer_id = self._customer_id(customer)
        feature = self._feature(req)
        now = self._now(customer_id)
        kind = EntitlementType(req.type)
        ent = Entitlement(
            id=new_id(),
            type=kind,
            customer_id=customer_id,
            feature_id=feature.id,
            feature_key=feature.key,
            created_at=now,
            updated_at=now,
            metadata=req.metadata,
        )
        grants: list[GrantRecord] = []
        if kind == EntitlementType.METERED:
            grants = self._metered_terms(ent, req, feature, now)
        else:
            for name in ("is_soft_limit", "preserve_overage_at_reset", "issue", "measure_usage_from"):
                if getattr(req, name) is not None:
                    raise InvalidInput.field(name, f"only metered entitlements take {name}")
            if req.usage_period is not None:
                raise InvalidInput.field("usage_period", "only metered entitlements have a usage period")
            if kind == EntitlementType.STATIC:
                if req.config is None:
                    raise InvalidInput.field(
                        "config", "static entitlements need a config (a JSON object)", "required"
                    )
                ent.config = req.config
            elif req.config is not None:
                raise InvalidInput.field("config", "only static entitlements take a config")
        try:
            # The claim item makes "one active entitlement per customer and feature" atomic.
            self.repo.create(ent, grants, feature_pk=f"FEATURE#{feature.id}")
        except ClaimTaken:
            holder = self.repo.claim_holder(customer_id, feature.id, feature.key)
            if holder is not None:
                raise self._conflict(feature.key, holder) from None
            raise InvalidInput.field("feature_key", f"feature [{feature.key}] was archived") from None
        self.refresher.refresh(ent, "created", created_with=grants)
        return self.current(ent)

    @staticmethod
    def _conflict(feature_key: str, holder: str) -> Conflict:
        return Conflict(
            f"The customer already has an active entitlement [{holder}] for feature [{feature_key}]",
            conflicting_entity_id=holder,
        )

    def _feature(self, req: CreateEntitlementRequest) -> Any:
        if req.feature_key is None and req.feature_id is None:
            raise InvalidInput.field("feature_key", "feature_key or feature_id is required", "required")
        field = "feature_id" if req.feature_id is not None else "feature_key"
        ref = req.feature_id or req.feature_key or ""
        feature = self.features.find(ref)
        if feature is None:
            raise InvalidInput.field(field, f"feature [{ref}] not found")
        if req.feature_id is not None and req.feature_key is not None and feature.key != req.feature_key:
            raise InvalidInput.field("feature_key", f"feature [{req.feature_id}] has key [{feature.key}]")
        if feature.archived_at is not None:
            raise InvalidInput.field(field, f"feature [{feature.key}] is archived: no new entitlements")
        return feature

    def _metered_terms(
        self, ent: Entitlement, req: CreateEntitlementRequest, feature: Any, now: datetime
    ) -> list[GrantRecord]:
        if feature.meter_id is None:
            raise InvalidInput.field(
                "type", f"feature [{feature.key}] has no meter: metered entitlements need one"
            )
        meter = self.usage.meters.get(feature.meter_id)
        if meter is None or meter.deleted_at is not None:
            raise InvalidInput.field("type", f"the meter of feature [{feature.key}] was deleted")
        if meter.aggregation not in ENTITLEMENT_AGGREGATIONS:
            allowed = ", ".join(sorted(a.value for a in ENTITLEMENT_AGGREGATIONS))
            raise InvalidInput.field(
                "type",
                f"meter [{meter.key}] aggregates with {meter.aggregation.value}; entitlements take {allowed}",
            )
        if req.usage_period is None:
            raise InvalidInput.field("usage_period", "metered entitlements need a usage period", "required")
        if req.config is not None:
            raise InvalidInput.field("config", "only static entitlements take a config")
        interval = req.usage_period.interval
        anchor = floor_minute(req.usage_period.anchor) if req.usage_period.anchor else None
        minute = floor_minute(now)
        mfrom = req.measure_usage_from
        if mfrom is None or mfrom == MeasureUsageFrom.NOW:
            measure_from = minute
        elif mfrom == MeasureUsageFrom.CURRENT_PERIOD_START:
            base = anchor or minute
            measure_from = durations.step(base, interval, durations.index_at(base, interval, minute))
        else:
            measure_from = floor_minute(mfrom)
        ent.meter_id = meter.id
        ent.usage_period_interval = interval
        ent.usage_period_anchor = anchor or measure_from
        ent.measure_usage_from = measure_from
        ent.is_soft_limit = bool(req.is_soft_limit)
        ent.preserve_overage_at_reset = bool(req.preserve_overage_at_reset)
        if req.issue is None:
            return []
        ent.issue_after_reset = req.issue.amount
        ent.issue_after_reset_priority = req.issue.priority
        start = self.current_period(ent, now)[0]
        return [
            GrantRecord(
                id=new_id(),
                entitlement_id=ent.id,
                amount=req.issue.amount,
                priority=req.issue.priority,
                effective_at=start,
                created_at=now,
                min_rollover_amount=req.issue.amount,
                max_rollover_amount=req.issue.amount,
                annotations={"issue_after_reset": True},
            )
        ]

    def current(self, ent: Entitlement) -> CurrentEntitlement:
        live_metered = ent.type == EntitlementType.METERED and ent.deleted_at is None
        return CurrentEntitlement(ent, self.current_period(ent) if live_metered else None)

    def get(self, customer: str, id_or_feature_key: str) -> CurrentEntitlement:
        return self.current(self.find(customer, id_or_feature_key))

    def list(self, customer: str, query: ListEntitlementsQuery) -> Listed[CurrentEntitlement]:
        """The customer's entitlements (deleted ones too), by feature key, creation and id."""
        ents = self.repo.for_customer(self._customer_id(customer))
        if query.feature_key is not None:
            ents = [e for e in ents if e.feature_key == query.feature_key]
        if query.type is not None:
            ents = [e for e in ents if e.type == query.type]
        ents.sort(key=lambda e: (e.feature_key, e.created_at, e.id))
        return Listed([self.current(e) for e in query.page.slice(ents)], len(ents))

    def delete(self, customer: str, id_or_feature_key: str) -> None:
        ent = self.find(customer, id_or_feature_key)
        if ent.deleted_at is not None:
            raise NotFound(f"Entitlement [{id_or_feature_key}] was already deleted")
        now = self._now(ent.customer_id)
        try:
            self.repo.soft_delete(ent, now)
        except EntitlementGone:
            raise NotFound(f"Entitlement [{id_or_feature_key}] was already deleted") from None
        ent.deleted_at = now
        self.refresher.refresh(ent, "deleted")

    def end_for_customer(self, customer_id: str) -> int:
        """A deleted customer's entitlements end with it (soft delete; access states removed).
        Idempotent: a retried customer delete finishes what an interrupted one began."""
        ended = 0
        now = self._now(customer_id)
        for ent in self.repo.for_customer(customer_id):
            try:
                self.repo.soft_delete(ent, now)
            except EntitlementGone:
                continue
            ent.deleted_at = now
            self.refresher.refresh(ent, "deleted")
            ended += 1
        return ended

    # -- value and history -------------------------------------------------------------------------
    def value(self, customer: str, id_or_feature_key: str, query: ValueQuery) -> engine.Value | PlainAccess:
        try:
            ent = self.find(customer, id_or_feature_key)
        except NotFound:
            if is_ulid(id_or_feature_key):
                raise
            return PlainAccess(False)  # no entitlement for the feature: no access (engine-rules §6)
        at = query.at or self._now(ent.customer_id)
        if (ent.deleted_at is not None and at >= ent.deleted_at) or at < ent.created_at - timedelta(
            minutes=1
        ):
            return PlainAccess(False)
        if ent.type != EntitlementType.METERED:
            return PlainAccess(True, (ent.config or {}) if ent.type == EntitlementType.STATIC else None)
        terms, usage_fn = self._terms(ent)
        grants = to_engine_grants(self.repo.grants(ent.id))
        snapshot = None
        state = self.store.get(ent.customer_id, ent.feature_key)
        if state is not None and state.entitlement_id == ent.id and state.snapshot:
            snap = snapshot_from_dict(state.snapshot)
            snapshot = snap if snap.at <= at else None
        return engine.value_at(terms, grants, usage_fn, ceil_minute(at + timedelta(microseconds=1)), snapshot)

    def history(self, customer: str, id_or_feature_key: str, query: HistoryQuery) -> History:
        ent = self._metered(customer, id_or_feature_key)
        terms, usage_fn = self._terms(ent)
        grants = to_engine_grants(self.repo.grants(ent.id))
        now = self._now(ent.customer_id)
        src = query.SOURCE
        start = query.start or engine.period_at(terms, max(now, terms.measure_usage_from))[0]
        # History ends now at the latest (the minute in progress included): there is no future usage.
        end = min(query.end or now, now)
        start, end = floor_minute(start), ceil_minute(end)
        if start < terms.measure_usage_from:
            raise InvalidInput.field(
                "from",
                f"may not precede measure_usage_from ({format_rfc3339(terms.measure_usage_from)})",
                "invalid",
                src,
            )
        if end <= start:
            raise InvalidInput.field("to", "must be after from", "invalid", src)
        spans = list(windows(start, end, query.window_size, query.time_zone))
        if len(spans) > MAX_HISTORY_WINDOWS:
            raise InvalidInput.field(
                "window_size",
                f"{len(spans)} windows; at most {MAX_HISTORY_WINDOWS} per request",
                "invalid",
                src,
            )
        spans = [(max(a, start), min(b, end)) for a, b in spans]
        marks = engine.balances_at(terms, grants, usage_fn, [a for a, _ in spans], end)
        windowed = []
        for a, b in spans:
            used = usage_fn(a, b)
            if used == 0:
                continue
            mark = marks.get(a)
            live = [g.id for g in grants if g.active_at(a)]
            balance = (
                sum((mark.grant_balances.get(g, Decimal(0)) for g in live), Decimal(0))
                if mark
                else Decimal(0)
            )
            windowed.append(WindowUsage((a, b), used, balance))
        return History(windowed, engine.burndown(terms, grants, usage_fn, start, end))

    # -- resets ------------------------------------------------------------------------------------
    def reset(self, customer: str, id_or_feature_key: str, req: ResetRequest) -> None:
        ent = self._metered(customer, id_or_feature_key)
        now = self._now(ent.customer_id)
        if req.effective_at is not None and req.effective_at > now:
            raise InvalidInput.field("effective_at", "may not be in the future")
        at = floor_minute(req.effective_at or now)
        assert ent.measure_usage_from is not None
        if at < ent.measure_usage_from:
            raise InvalidInput.field("effective_at", "may not precede measure_usage_from")
        period_start = self.current_period(ent, now)[0]
        if at <= period_start:
            raise InvalidInput.field(
                "effective_at",
                f"must be after the current usage period's start ({format_rfc3339(period_start)})",
            )
        preserve = req.preserve_overage if req.preserve_overage is not None else ent.preserve_overage_at_reset
        record = ResetRecord(at=at, preserve_overage=preserve, retain_anchor=req.retain_anchor)
        try:
            self.repo.add_reset(ent, record, now)
        except ResetConflict:
            raise Conflict(
                f"Entitlement [{ent.id}] was reset at or after {format_rfc3339(at)} meanwhile"
            ) from None
        ent.resets.append(record)
        self.refresher.refresh(ent, "reset", invalidate_from=at)

    # -- grants ------------------------------------------------------------------------------------
    def create_grant(self, customer: str, id_or_feature_key: str, req: CreateGrantRequest) -> CurrentGrant:
        ent = self._metered(customer, id_or_feature_key)
        now = self._now(ent.customer_id)
        effective = floor_minute(req.effective_at)
        period_start = self.current_period(ent, now)[0]
        if effective < period_start:
            raise InvalidInput.field(
                "effective_at",
                f"may not precede the current usage period's start ({format_rfc3339(period_start)})",
            )
        max_rollover = req.max_rollover_amount if req.max_rollover_amount is not None else req.amount
        min_rollover = req.min_rollover_amount if req.min_rollover_amount is not None else Decimal(0)
        if min_rollover > max_rollover:
            raise InvalidInput.field("min_rollover_amount", "may not exceed max_rollover_amount")
        expires = None
        if req.expiration is not None:
            unit = EXPIRATION_STEPS[req.expiration.duration.value]
            expires = effective + unit * req.expiration.count
        grant = GrantRecord(
            id=new_id(),
            entitlement_id=ent.id,
            amount=req.amount,
            priority=req.priority,
            effective_at=effective,
            created_at=now,
            expires_at=expires,
            min_rollover_amount=min_rollover,
            max_rollover_amount=max_rollover,
            recurrence_interval=req.recurrence.interval if req.recurrence else None,
            recurrence_anchor=floor_minute(req.recurrence.anchor)
            if req.recurrence and req.recurrence.anchor
            else (effective if req.recurrence else None),
            metadata=req.metadata,
        )
        try:
            self.repo.put_grant(grant)
        except EntitlementGone:
            raise NotFound(f"Entitlement [{ent.id}] was deleted") from None
        self.refresher.refresh(ent, "grant", invalidate_from=effective)
        return self._current_grant(grant, now)

    def list_grants(
        self, customer: str, id_or_feature_key: str, query: ListGrantsQuery
    ) -> Listed[CurrentGrant]:
        ent = self._metered(customer, id_or_feature_key)
        grants = self.repo.grants(ent.id)
        if not query.include_voided:
            grants = [g for g in grants if g.voided_at is None]
        grants.sort(key=lambda g: (g.effective_at, g.created_at, g.id))
        now = self._now(ent.customer_id)
        return Listed([self._current_grant(g, now) for g in query.page.slice(grants)], len(grants))

    @staticmethod
    def _current_grant(g: GrantRecord, now: datetime) -> CurrentGrant:
        """With its next recurrence, if it recurs again before it expires (and isn't voided by now)."""
        if not g.recurrence_interval or (g.voided_at is not None and g.voided_at <= now):
            return CurrentGrant(g)
        anchor = g.recurrence_anchor or g.effective_at
        after = max(now, g.effective_at)
        nxt = durations.step(
            anchor, g.recurrence_interval, durations.index_at(anchor, g.recurrence_interval, after) + 1
        )
        return CurrentGrant(g, nxt if g.expires_at is None or nxt < g.expires_at else None)

    def void_grant(
        self, customer: str, id_or_feature_key: str, grant_id: str, req: VoidGrantRequest
    ) -> CurrentGrant:
        ent = self._metered(customer, id_or_feature_key)
        grant = self.repo.get_grant(ent.id, grant_id) if is_ulid(grant_id) else None
        if grant is None:
            raise NotFound(f"Grant [{grant_id}] not found on entitlement [{ent.id}]")
        if grant.voided_at is not None:
            raise InvalidInput.field("grant_id", f"grant [{grant_id}] is already voided", "invalid", "path")
        now = self._now(ent.customer_id)
        if req.at is not None and req.at > now:
            raise InvalidInput.field("at", "may not be in the future")
        at = floor_minute(req.at or now)
        period_start = self.current_period(ent, now)[0]
        if at < period_start:
            raise InvalidInput.field(
                "at", f"may not precede the current usage period's start ({format_rfc3339(period_start)})"
            )
        try:
            self.repo.void_grant(grant, at)
        except AlreadyVoided:
            raise InvalidInput.field(
                "grant_id", f"grant [{grant_id}] is already voided", "invalid", "path"
            ) from None
        grant.voided_at = at
        self.refresher.refresh(ent, "void", invalidate_from=at)
        return self._current_grant(grant, now)

    # -- access ------------------------------------------------------------------------------------
    def access(self, customer: str) -> builtins.list[AccessState]:
        """The hot path: one Query of the customer's stored access states. The customer itself is
        looked up only when that finds nothing (to tell an unknown customer, 404, from none)."""
        states = self.store.states(customer) if is_ulid(customer) else []
        if not states:
            states = self.store.states(self._customer_id(customer))
        if not states:
            return []
        # A clock-bound customer's states say so (bound at creation, never after): no lookup
        # beyond the clock's time for them, none at all for everyone else.
        clock_id = states[0].test_clock_id
        now = self._now(states[0].customer_id) if clock_id else self.clock.now()
        return sorted(self._fresh(states, now), key=lambda s: s.feature_key)

    def _fresh(self, states: builtins.list[AccessState], now: datetime) -> builtins.list[AccessState]:
        """States whose usage period has ended are recomputed on read, so a reset is visible at once,
        before the scheduled sweep reaches it."""
        stale = [s for s in states if s.period_to is not None and s.period_to <= now]
        if not stale:
            return states
        fresh = {s.feature_key: s for s in self.refresher.refresh_states(stale)}
        return [fresh.get(s.feature_key, s) for s in states]
