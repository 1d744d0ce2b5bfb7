"""Entitlement and grant operations behind the customer-scoped API (engine-rules §2.4-2.5).

Every instant an entitlement works with (measure_usage_from, anchors, grant effective_at, resets,
voids) is truncated to the minute. Each change refreshes the stored access state right away (and
so publishes its domain events), invalidating snapshots from the change's effective time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from dateutil.relativedelta import relativedelta

from shared.api.params import page_params
from shared.api.problem import BadRequest, Conflict, NotFound
from shared.api.validation import validate_model
from shared.core import durations
from shared.core.decimals import wire
from shared.core.ids import is_ulid, new_id
from shared.core.timeutil import (
    Clock,
    ceil_minute,
    floor_minute,
    format_optional,
    format_rfc3339,
    parse_rfc3339,
)
from shared.customers.service import CustomerService
from shared.entitlements import engine
from shared.entitlements.access import AccessStore
from shared.entitlements.convert import to_engine_grants, to_terms
from shared.entitlements.models import (
    ENTITLEMENT_AGGREGATIONS,
    Entitlement,
    EntitlementType,
    GrantRecord,
    ResetRecord,
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
    MeasureUsageFrom,
    ResetRequest,
    VoidGrantRequest,
)
from shared.entitlements.usage import EntitlementUsage
from shared.features.service import FeatureService
from shared.usage.windows import windows

WINDOW_SIZES = {"PT1M": "PT1M", "PT1H": "PT1H", "P1D": "P1D", "P1M": "P1M"}
WINDOW_ALIASES = {"MINUTE": "PT1M", "HOUR": "PT1H", "DAY": "P1D", "MONTH": "P1M"}
MAX_HISTORY_WINDOWS = 1000
EXPIRATION_STEPS = {
    "HOUR": relativedelta(hours=1),
    "DAY": relativedelta(days=1),
    "WEEK": relativedelta(weeks=1),
    "MONTH": relativedelta(months=1),
    "YEAR": relativedelta(years=1),
}


def entitlement_to_api(ent: Entitlement, current: tuple[datetime, datetime] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ent.id,
        "type": ent.type.value,
        "customer_id": ent.customer_id,
        "feature_id": ent.feature_id,
        "feature_key": ent.feature_key,
        "created_at": format_rfc3339(ent.created_at),
        "updated_at": format_rfc3339(ent.updated_at),
    }
    if ent.metadata is not None:
        body["metadata"] = ent.metadata
    if ent.deleted_at is not None:
        body["deleted_at"] = format_rfc3339(ent.deleted_at)
    if ent.type == EntitlementType.STATIC:
        body["config"] = ent.config
    if ent.type == EntitlementType.METERED:
        body.update(
            {
                "is_soft_limit": ent.is_soft_limit,
                "preserve_overage_at_reset": ent.preserve_overage_at_reset,
                "measure_usage_from": format_optional(ent.measure_usage_from),
                "usage_period": {
                    "interval": ent.usage_period_interval,
                    "anchor": format_optional(ent.usage_period_anchor),
                },
                "issue": {"amount": wire(ent.issue_after_reset), "priority": ent.issue_after_reset_priority}
                if ent.issue_after_reset is not None
                else None,
            }
        )
        if current is not None:
            body["current_usage_period"] = {
                "from": format_rfc3339(current[0]),
                "to": format_rfc3339(current[1]),
            }
            body["last_reset"] = format_rfc3339(current[0])
    return body


def grant_to_api(g: GrantRecord, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": g.id,
        "entitlement_id": g.entitlement_id,
        "amount": wire(g.amount),
        "priority": g.priority,
        "effective_at": format_rfc3339(g.effective_at),
        "expires_at": format_optional(g.expires_at),
        "min_rollover_amount": wire(g.min_rollover_amount),
        "max_rollover_amount": wire(g.max_rollover_amount if g.max_rollover_amount is not None else g.amount),
        "recurrence": {
            "interval": g.recurrence_interval,
            "anchor": format_optional(g.recurrence_anchor or g.effective_at),
        }
        if g.recurrence_interval
        else None,
        "voided_at": format_optional(g.voided_at),
        "created_at": format_rfc3339(g.created_at),
        "annotations": g.annotations or {},
    }
    if g.metadata is not None:
        body["metadata"] = g.metadata
    if g.recurrence_interval and (g.voided_at is None or g.voided_at > now):
        anchor = g.recurrence_anchor or g.effective_at
        after = max(now, g.effective_at)
        nxt = durations.step(
            anchor, g.recurrence_interval, durations.index_at(anchor, g.recurrence_interval, after) + 1
        )
        if g.expires_at is None or nxt < g.expires_at:
            body["next_recurrence"] = format_rfc3339(nxt)
    return body


def value_to_api(value: engine.Value) -> dict[str, Any]:
    return {
        "has_access": value.has_access,
        "balance": wire(value.balance),
        "usage": wire(value.usage),
        "overage": wire(value.overage),
        "total_available_grant_amount": wire(value.total_available_grant_amount),
        "grant_balances": {k: wire(v) for k, v in value.grant_balances.items()},
        "current_usage_period": {
            "from": format_rfc3339(value.current_period[0]),
            "to": format_rfc3339(value.current_period[1]),
        },
        "last_reset": format_optional(value.last_reset),
    }


def _time_param(params: dict[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise BadRequest.field(name, str(exc), "date_time", "query") from None


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
    ) -> None:
        self.repo = repo
        self.customers = customers
        self.features = features
        self.usage = usage
        self.store = store
        self.refresher = refresher
        self.clock = clock or Clock()

    # -- lookups ---------------------------------------------------------------------------------
    def _customer_id(self, customer: str) -> str:
        return self.customers.get(customer).id

    def get(self, customer: str, id_or_feature_key: str) -> Entitlement:
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
        ent = self.get(customer, id_or_feature_key)
        if ent.deleted_at is not None:
            raise NotFound(f"Entitlement [{id_or_feature_key}] was deleted")
        if ent.type != EntitlementType.METERED:
            raise BadRequest(
                f"Entitlement [{ent.id}] is {ent.type.value}: only metered entitlements have this"
            )
        return ent

    def _terms(self, ent: Entitlement) -> tuple[engine.Terms, engine.UsageFn]:
        usage_fn, kind = self.usage.usage_fn(ent)
        return to_terms(ent, kind), usage_fn

    def current_period(self, ent: Entitlement, at: datetime | None = None) -> tuple[datetime, datetime]:
        terms = to_terms(ent)
        t = max(at or self.clock.now(), terms.measure_usage_from)
        return engine.period_at(terms, t)

    # -- entitlements ----------------------------------------------------------------------------
    def create(self, customer: str, body: Any) -> dict[str, Any]:
        req = validate_model(CreateEntitlementRequest, body)
        customer_id = self._customer_id(customer)
        feature = self._feature(req)
        now = self.clock.now()
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
                    raise BadRequest.field(name, f"only metered entitlements take {name}")
            if req.usage_period is not None:
                raise BadRequest.field("usage_period", "only metered entitlements have a usage period")
            if kind == EntitlementType.STATIC:
                if req.config is None:
                    raise BadRequest.field(
                        "config", "static entitlements need a config (a JSON object)", "required"
                    )
                ent.config = req.config
            elif req.config is not None:
                raise BadRequest.field("config", "only static entitlements take a config")
        try:
            # The claim item makes "one active entitlement per customer and feature" atomic.
            self.repo.create(ent, grants, feature_pk=f"FEATURE#{feature.id}")
        except ClaimTaken:
            holder = self.repo.claim_holder(customer_id, feature.id, feature.key)
            if holder is not None:
                raise self._conflict(feature.key, holder) from None
            raise BadRequest.field("feature_key", f"feature [{feature.key}] was archived") from None
        self.refresher.refresh(ent, "created", created_with=grants)
        return self.to_api(ent)

    @staticmethod
    def _conflict(feature_key: str, holder: str) -> Conflict:
        return Conflict(
            f"The customer already has an active entitlement [{holder}] for feature [{feature_key}]",
            conflicting_entity_id=holder,
        )

    def _feature(self, req: CreateEntitlementRequest) -> Any:
        if req.feature_key is None and req.feature_id is None:
            raise BadRequest.field("feature_key", "feature_key or feature_id is required", "required")
        field = "feature_id" if req.feature_id is not None else "feature_key"
        ref = req.feature_id or req.feature_key or ""
        feature = self.features.find(ref)
        if feature is None:
            raise BadRequest.field(field, f"feature [{ref}] not found")
        if req.feature_id is not None and req.feature_key is not None and feature.key != req.feature_key:
            raise BadRequest.field("feature_key", f"feature [{req.feature_id}] has key [{feature.key}]")
        if feature.archived_at is not None:
            raise BadRequest.field(field, f"feature [{feature.key}] is archived: no new entitlements")
        return feature

    def _metered_terms(
        self, ent: Entitlement, req: CreateEntitlementRequest, feature: Any, now: datetime
    ) -> list[GrantRecord]:
        if feature.meter_id is None:
            raise BadRequest.field(
                "type", f"feature [{feature.key}] has no meter: metered entitlements need one"
            )
        meter = self.usage.meters.get(feature.meter_id)
        if meter is None or meter.deleted_at is not None:
            raise BadRequest.field("type", f"the meter of feature [{feature.key}] was deleted")
        if meter.aggregation not in ENTITLEMENT_AGGREGATIONS:
            allowed = ", ".join(sorted(a.value for a in ENTITLEMENT_AGGREGATIONS))
            raise BadRequest.field(
                "type",
                f"meter [{meter.key}] aggregates with {meter.aggregation.value}; entitlements take {allowed}",
            )
        if req.usage_period is None:
            raise BadRequest.field("usage_period", "metered entitlements need a usage period", "required")
        if req.config is not None:
            raise BadRequest.field("config", "only static entitlements take a config")
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
            measure_from = floor_minute(mfrom)  # type: ignore[arg-type]
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

    def to_api(self, ent: Entitlement) -> dict[str, Any]:
        current = (
            self.current_period(ent)
            if ent.type == EntitlementType.METERED and ent.deleted_at is None
            else None
        )
        return entitlement_to_api(ent, current)

    def list(self, customer: str, params: dict[str, str] | None) -> dict[str, Any]:
        page = page_params(params)
        customer_id = self._customer_id(customer)
        params = params or {}
        ents = self.repo.for_customer(customer_id)
        if (key := params.get("filter[feature_key]")) is not None:
            ents = [e for e in ents if e.feature_key == key]
        if (kind := params.get("filter[type]")) is not None:
            if kind not in {t.value for t in EntitlementType}:
                raise BadRequest.field("filter[type]", "must be metered, boolean or static", "enum", "query")
            ents = [e for e in ents if e.type.value == kind]
        ents.sort(key=lambda e: (e.feature_key, e.created_at, e.id))
        return page.response([self.to_api(e) for e in page.slice(ents)], len(ents))

    def delete(self, customer: str, id_or_feature_key: str) -> None:
        ent = self.get(customer, id_or_feature_key)
        if ent.deleted_at is not None:
            raise NotFound(f"Entitlement [{id_or_feature_key}] was already deleted")
        now = self.clock.now()
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
        now = self.clock.now()
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
    def value(self, customer: str, id_or_feature_key: str, params: dict[str, str] | None) -> dict[str, Any]:
        params = params or {}
        try:
            ent = self.get(customer, id_or_feature_key)
        except NotFound:
            if is_ulid(id_or_feature_key):
                raise
            return {"has_access": False}  # no entitlement for the feature: no access (engine-rules §6)
        at = _time_param(params, "time") or self.clock.now()
        if (ent.deleted_at is not None and at >= ent.deleted_at) or at < ent.created_at - timedelta(
            minutes=1
        ):
            return {"has_access": False}
        if ent.type != EntitlementType.METERED:
            body: dict[str, Any] = {"has_access": True}
            if ent.type == EntitlementType.STATIC:
                body["config"] = orjson.dumps(ent.config or {}).decode()
            return body
        terms, usage_fn = self._terms(ent)
        grants = to_engine_grants(self.repo.grants(ent.id))
        snapshot = None
        state = self.store.get(ent.customer_id, ent.feature_key)
        if state is not None and state.entitlement_id == ent.id and state.snapshot:
            snap = snapshot_from_dict(state.snapshot)
            snapshot = snap if snap.at <= at else None
        value = engine.value_at(
            terms, grants, usage_fn, ceil_minute(at + timedelta(microseconds=1)), snapshot
        )
        return value_to_api(value)

    def history(self, customer: str, id_or_feature_key: str, params: dict[str, str] | None) -> dict[str, Any]:
        params = params or {}
        ent = self._metered(customer, id_or_feature_key)
        terms, usage_fn = self._terms(ent)
        grants = to_engine_grants(self.repo.grants(ent.id))
        now = self.clock.now()
        raw_size = params.get("window_size")
        if raw_size is None:
            raise BadRequest.field("window_size", "is required: PT1M, PT1H, P1D or P1M", "required", "query")
        size = WINDOW_SIZES.get(raw_size) or WINDOW_ALIASES.get(raw_size.upper())
        if size is None:
            raise BadRequest.field("window_size", "must be PT1M, PT1H, P1D or P1M", "enum", "query")
        try:
            tz = ZoneInfo(params.get("window_time_zone", "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRequest.field("window_time_zone", "unknown IANA time zone", "enum", "query") from None
        start = _time_param(params, "from") or engine.period_at(terms, max(now, terms.measure_usage_from))[0]
        # History ends now at the latest (the minute in progress included): there is no future usage.
        end = min(_time_param(params, "to") or now, now)
        start, end = floor_minute(start), ceil_minute(end)
        if start < terms.measure_usage_from:
            raise BadRequest.field(
                "from",
                f"may not precede measure_usage_from ({format_rfc3339(terms.measure_usage_from)})",
                "invalid",
                "query",
            )
        if end <= start:
            raise BadRequest.field("to", "must be after from", "invalid", "query")
        spans = list(windows(start, end, size, tz))
        if len(spans) > MAX_HISTORY_WINDOWS:
            raise BadRequest.field(
                "window_size",
                f"{len(spans)} windows; at most {MAX_HISTORY_WINDOWS} per request",
                "invalid",
                "query",
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
            windowed.append(
                {
                    "period": {"from": format_rfc3339(a), "to": format_rfc3339(b)},
                    "usage": wire(used),
                    "balance_at_start": wire(balance),
                }
            )
        segments = engine.burndown(terms, grants, usage_fn, start, end)
        return {
            "windowed_history": windowed,
            "burndown_history": [
                {
                    "period": {"from": format_rfc3339(s.start), "to": format_rfc3339(s.end)},
                    "usage": wire(s.usage),
                    "overage": wire(s.overage),
                    "balance_at_start": wire(s.balance_at_start),
                    "grant_balances_at_start": {k: wire(v) for k, v in s.grant_balances_at_start.items()},
                    "balance_at_end": wire(s.balance_at_end),
                    "grant_balances_at_end": {k: wire(v) for k, v in s.grant_balances_at_end.items()},
                    "grant_usages": [{"grant_id": k, "usage": wire(v)} for k, v in s.grant_usages.items()],
                }
                for s in segments
            ],
        }

    # -- resets ------------------------------------------------------------------------------------
    def reset(self, customer: str, id_or_feature_key: str, body: Any) -> None:
        req = validate_model(ResetRequest, body if body is not None else {})
        ent = self._metered(customer, id_or_feature_key)
        now = self.clock.now()
        if req.effective_at is not None and req.effective_at > now:
            raise BadRequest.field("effective_at", "may not be in the future")
        at = floor_minute(req.effective_at or now)
        assert ent.measure_usage_from is not None
        if at < ent.measure_usage_from:
            raise BadRequest.field("effective_at", "may not precede measure_usage_from")
        period_start = self.current_period(ent, now)[0]
        if at <= period_start:
            raise BadRequest.field(
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
    def create_grant(self, customer: str, id_or_feature_key: str, body: Any) -> dict[str, Any]:
        req = validate_model(CreateGrantRequest, body)
        ent = self._metered(customer, id_or_feature_key)
        now = self.clock.now()
        effective = floor_minute(req.effective_at)
        period_start = self.current_period(ent, now)[0]
        if effective < period_start:
            raise BadRequest.field(
                "effective_at",
                f"may not precede the current usage period's start ({format_rfc3339(period_start)})",
            )
        max_rollover = req.max_rollover_amount if req.max_rollover_amount is not None else req.amount
        min_rollover = req.min_rollover_amount if req.min_rollover_amount is not None else Decimal(0)
        if min_rollover > max_rollover:
            raise BadRequest.field("min_rollover_amount", "may not exceed max_rollover_amount")
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
        return grant_to_api(grant, now)

    def list_grants(
        self, customer: str, id_or_feature_key: str, params: dict[str, str] | None
    ) -> dict[str, Any]:
        page = page_params(params)
        ent = self._metered(customer, id_or_feature_key)
        params = params or {}
        grants = self.repo.grants(ent.id)
        include_voided = params.get("include_voided", "true")
        if include_voided not in ("true", "false"):
            raise BadRequest.field("include_voided", "must be true or false", "enum", "query")
        if include_voided == "false":
            grants = [g for g in grants if g.voided_at is None]
        grants.sort(key=lambda g: (g.effective_at, g.created_at, g.id))
        now = self.clock.now()
        return page.response([grant_to_api(g, now) for g in page.slice(grants)], len(grants))

    def void_grant(self, customer: str, id_or_feature_key: str, grant_id: str, body: Any) -> dict[str, Any]:
        req = validate_model(VoidGrantRequest, body if body is not None else {})
        ent = self._metered(customer, id_or_feature_key)
        grant = self.repo.get_grant(ent.id, grant_id) if is_ulid(grant_id) else None
        if grant is None:
            raise NotFound(f"Grant [{grant_id}] not found on entitlement [{ent.id}]")
        if grant.voided_at is not None:
            raise BadRequest.field("grant_id", f"grant [{grant_id}] is already voided", "invalid", "path")
        now = self.clock.now()
        if req.at is not None and req.at > now:
            raise BadRequest.field("at", "may not be in the future")
        at = floor_minute(req.at or now)
        period_start = self.current_period(ent, now)[0]
        if at < period_start:
            raise BadRequest.field(
                "at", f"may not precede the current usage period's start ({format_rfc3339(period_start)})"
            )
        try:
            self.repo.void_grant(grant, at)
        except AlreadyVoided:
            raise BadRequest.field(
                "grant_id", f"grant [{grant_id}] is already voided", "invalid", "path"
            ) from None
        grant.voided_at = at
        self.refresher.refresh(ent, "void", invalidate_from=at)
        return grant_to_api(grant, now)

    # -- access ------------------------------------------------------------------------------------
    def access(self, customer: str) -> dict[str, Any]:
        """The hot path: one Query of the customer's stored access states. The customer itself is
        looked up only when that finds nothing (to tell an unknown customer, 404, from none)."""
        if is_ulid(customer) and (rows := self.store.list(customer, self.clock.now())):
            return {"data": rows}
        return {"data": self.store.list(self._customer_id(customer), self.clock.now())}
