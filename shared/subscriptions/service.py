"""Subscription use cases (engine-rules §2.8, product.md §11): typed inputs in (`requests.py`), domain
objects out (`models.py`), domain errors (`shared.core.errors`) raised; nothing is written unless every
check passed.

Time: every "now" is the subscription's customer's now, `now_for(customer_id)` (the process clock, or
a test clock the customer lives on). `run_due(customers, until)` performs what fell due up to `until`:
phase changes and ends, which (re)materialise the entitlements of the rate cards with an entitlement
template through the EntitlementService. It is idempotent: each subscription records what it last
materialised (`applied`), written with the customer's timeline under its revision.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from shared.catalog.models import Addon, EntitlementType, InstanceType, Plan, PriceType, RateCard
from shared.catalog.models import Status as PlanStatus
from shared.catalog.repository import AddonRepository, PlanRepository
from shared.core import durations
from shared.core.errors import Conflict, DomainError, InvalidInput, NotFound
from shared.core.ids import new_id
from shared.core.listing import Listed
from shared.core.timeutil import Clock, format_rfc3339
from shared.customers.service import CustomerService
from shared.entitlements.requests import CreateEntitlementRequest
from shared.entitlements.service import EntitlementService
from shared.subscriptions import periods
from shared.subscriptions.models import (
    ENDED,
    ONLY_SINGLE_SUBSCRIPTION,
    ChangeResult,
    PhaseSpan,
    QuantitySegment,
    SettlementMode,
    Span,
    Subscription,
    SubscriptionAddon,
    Timing,
    TimingSpec,
)
from shared.subscriptions.repository import SubscriptionRepository, TimelineChanged
from shared.subscriptions.requests import (
    ChangeSubscriptionRequest,
    CreateSubscriptionAddonRequest,
    CreateSubscriptionRequest,
    CustomerRef,
    ListSubscriptionAddonsQuery,
    ListSubscriptionsQuery,
    PlanRef,
    UpdateSubscriptionAddonRequest,
)

logger = Logger(service="meterline", child=True)
ATTEMPTS = 5  # timeline write retries: each lost race re-reads and re-checks


class SubscriptionService:
    name = "subscriptions"  # as a test clock's due-work provider (shared/testclocks/due.py)

    def __init__(
        self,
        repo: SubscriptionRepository,
        plans: PlanRepository,
        customers: CustomerService,
        entitlements: EntitlementService,
        now_for: Callable[[str], datetime],
        addons: AddonRepository | None = None,
        wall: Clock | None = None,
    ) -> None:
        self.repo = repo
        # The catalog lives on wall time, customers may live on a test clock: a plan published now can
        # be subscribed by a customer whose clock is in the past (as Stripe's prices on test clocks).
        self.wall = wall or Clock()
        self.addon_versions = addons
        self.plans = plans
        self.customers = customers
        self.entitlements = entitlements
        self.now_for = now_for

    # -- lookups ---------------------------------------------------------------------------------
    def get(self, sub_id: str) -> Subscription:
        sub = self.repo.get(sub_id)
        if sub is None:
            raise NotFound(f"Subscription [{sub_id}] not found")
        return sub

    def list(self, query: ListSubscriptionsQuery) -> Listed[Subscription]:
        subs = [s for s in self.repo.list_all() if query.matches(s, self.now_for(s.customer_id))]
        return Listed.of(query.page, query.order(subs))

    def _customer(self, ref: CustomerRef) -> Any:
        field, value = ("customer.id", ref.id) if ref.id is not None else ("customer.key", ref.key)
        customer = self.customers.find(value or "")
        if customer is None or customer.deleted_at is not None:
            raise InvalidInput.field(field, f"customer [{value}] not found", "missing_reference")
        return customer

    def _plan(self, ref: PlanRef, customer_now: datetime) -> Plan:
        # A plan must be active at the customer's now, or now in wall time when that is later.
        now = max(customer_now, self.wall.now())
        if ref.id is not None:
            field, found = "plan.id", self.plans.get(ref.id)
            plan = found[0] if found else None
            if plan is None:
                raise InvalidInput.field(field, f"plan [{ref.id}] not found", "missing_reference")
        else:
            versions = [p for p, _ in self.plans.versions(ref.key or "") if p.deleted_at is None]
            if ref.version is not None:
                field = "plan.version"
                plan = next((p for p in versions if p.version == ref.version), None)
                if plan is None:
                    raise InvalidInput.field(
                        field, f"plan [{ref.key}] has no version {ref.version}", "missing_reference"
                    )
            else:
                field = "plan.key"
                if not versions:
                    raise InvalidInput.field(field, f"plan [{ref.key}] not found", "missing_reference")
                active = [p for p in versions if p.status(now) == PlanStatus.ACTIVE]
                plan = active[-1] if active else versions[-1]
        status = plan.status(now)
        if plan.deleted_at is not None or status != PlanStatus.ACTIVE:
            state = "deleted" if plan.deleted_at is not None else status.value
            raise InvalidInput.field(
                field,
                f"plan [{plan.key}] version {plan.version} is {state}: only active plans can be subscribed",
            )
        return plan

    @staticmethod
    def _currency(customer: Any, plan: Plan, field: str) -> None:
        priced = any(rc.price.type != PriceType.FREE for _, rc in plan.rate_cards())
        if priced and customer.currency and customer.currency != plan.currency:
            raise InvalidInput.field(
                field,
                f"plan currency {plan.currency} does not match the customer's currency {customer.currency}",
            )

    @staticmethod
    def _plan_field(ref: PlanRef) -> str:
        return "plan.id" if ref.id is not None else "plan.version" if ref.version is not None else "plan.key"

    # -- create ----------------------------------------------------------------------------------
    def create(self, req: CreateSubscriptionRequest) -> Subscription:
        customer = self._customer(req.customer)
        now = self.now_for(customer.id)
        plan = self._plan(req.plan, now)
        self._currency(customer, plan, self._plan_field(req.plan))
        start = self._create_start(req.timing, req.billing_anchor, plan.billing_cadence, now)
        sub = self._build(customer.id, plan, start, req.billing_anchor or start, now, req)
        self._check_entitlement_claims(customer.id, plan, sub)
        self._write(customer.id, [sub], lambda spans: self._check_free(spans, sub, None))
        self.run_due([customer.id], now)
        return self.get(sub.id)

    @staticmethod
    def _create_start(timing: TimingSpec, anchor: datetime | None, cadence: str, now: datetime) -> datetime:
        if timing == Timing.IMMEDIATE:
            return now
        if timing == Timing.NEXT_BILLING_CYCLE:
            if anchor is None:
                raise InvalidInput.field(
                    "timing",
                    "next_billing_cycle needs a billing_anchor to define the cycle",
                    "dependent_required",
                )
            return periods.next_boundary(anchor, cadence, now)
        assert isinstance(timing, datetime)
        if timing < now:
            raise InvalidInput.field("timing", "a subscription cannot start in the past")
        return timing

    def _build(
        self,
        customer_id: str,
        plan: Plan,
        start: datetime,
        origin: datetime,
        now: datetime,
        req: CreateSubscriptionRequest,
    ) -> Subscription:
        spans, t = [], start
        for phase in plan.phases:
            spans.append(PhaseSpan(phase.key, t))
            if phase.duration is not None:
                try:
                    t = durations.step(t, phase.duration, 1)
                except (OverflowError, ValueError):
                    break  # the phase outlasts the calendar (year 9999): no later phase ever starts
        return Subscription(
            id=new_id(),
            customer_id=customer_id,
            plan_id=plan.id,
            plan_key=plan.key,
            plan_version=plan.version,
            currency=plan.currency,
            billing_cadence=plan.billing_cadence,
            anchor_origin=origin,
            billing_anchor=periods.normalize_anchor(origin, plan.billing_cadence, start),
            active_from=start,
            phases=tuple(spans),
            created_at=now,
            updated_at=now,
            labels=req.labels,
            settlement_mode=SettlementMode(req.settlement_mode or SettlementMode.CREDIT_THEN_INVOICE),
        )

    def _check_entitlement_claims(self, customer_id: str, plan: Plan, sub: Subscription) -> None:
        """An entitlement the subscription will manage must not be held by one made by hand."""
        features = {rc.feature_id for _, rc in plan.rate_cards() if rc.entitlement and rc.feature_id}
        for ent in self.entitlements.repo.for_customer(customer_id):
            if ent.feature_id in features and not (ent.metadata or {}).get("subscription_id"):
                raise Conflict(
                    f"The customer already has an entitlement [{ent.id}] for feature [{ent.feature_key}] "
                    "that the subscription would manage",
                    conflicting_entity_id=ent.id,
                )

    @staticmethod
    def _check_free(
        spans: builtins.list[Span], sub: Subscription, replacing: Subscription | None
    ) -> builtins.list[Span]:
        """The timeline with `sub` added (and `replacing` shortened), or 409 if it would overlap."""
        others = [s for s in spans if replacing is None or s.subscription_id != replacing.id]
        for span in others:
            if span.overlaps(sub.active_from, sub.active_to):
                raise Conflict(
                    f"Customer [{sub.customer_id}] already has subscription [{span.subscription_id}] at that "
                    f"time ({ONLY_SINGLE_SUBSCRIPTION})",
                    code=ONLY_SINGLE_SUBSCRIPTION,
                    conflicting_entity_id=span.subscription_id,
                )
        if replacing is not None:
            others.append(Span(replacing.id, replacing.active_from, replacing.active_to))
        return [*others, Span(sub.id, sub.active_from, sub.active_to)]

    def _write(
        self,
        customer_id: str,
        subs: builtins.list[Subscription],
        timeline: Callable[[builtins.list[Span]], builtins.list[Span]],
        addon: Callable[[], SubscriptionAddon] | None = None,
    ) -> None:
        """Check against the customer's timeline and write, re-checking after a lost race."""
        for _ in range(ATTEMPTS):
            spans, rev = self.repo.timeline(customer_id)
            try:
                new_spans = timeline(spans)
                self.repo.save(customer_id, rev, new_spans, subs, (addon(),) if addon else ())
                return
            except TimelineChanged:
                continue
        raise Conflict(f"Subscriptions of customer [{customer_id}] are changing concurrently; retry")

    # -- cancel / unschedule ---------------------------------------------------------------------
    def _later(self, sub: Subscription) -> Span | None:
        spans, _ = self.repo.timeline(sub.customer_id)
        return next(
            (s for s in spans if s.subscription_id != sub.id and s.start >= sub.active_from and not s.empty),
            None,
        )

    def _boundary(self, sub: Subscription, timing: TimingSpec, now: datetime) -> datetime:
        """When a change or cancel with `timing` takes effect (400 naming `timing` if it can't)."""
        if timing == Timing.IMMEDIATE:
            return max(now, sub.active_from)
        if timing == Timing.NEXT_BILLING_CYCLE:
            return periods.next_boundary(sub.anchor_origin, sub.billing_cadence, max(now, sub.active_from))
        assert isinstance(timing, datetime)
        if timing < now:
            raise InvalidInput.field("timing", "must not be in the past")
        if timing < sub.active_from:
            raise InvalidInput.field("timing", "must not be before the subscription starts")
        if not periods.is_boundary(sub.anchor_origin, sub.billing_cadence, timing):
            period = periods.period_at(sub.anchor_origin, sub.billing_cadence, timing)
            raise InvalidInput.field(
                "timing",
                f"cadence_misaligned: must fall on a billing period boundary ({sub.billing_cadence} from "
                f"{format_rfc3339(sub.anchor_origin)}), e.g. {format_rfc3339(period.end)}",
            )
        return timing

    def _ended(self, sub: Subscription, now: datetime) -> None:
        if sub.active_to is not None and sub.active_to <= now:
            raise Conflict(f"Subscription [{sub.id}] has ended", conflicting_entity_id=sub.id)

    def cancel(self, sub_id: str, timing: TimingSpec) -> Subscription:
        sub = self.get(sub_id)
        now = self.now_for(sub.customer_id)
        self._ended(sub, now)
        end = self._boundary(sub, timing, now)
        if sub.active_to is not None and end > sub.active_to:
            end = sub.active_to  # already canceled earlier: a later cancel time changes nothing
        later = self._later(sub)
        if later is not None:
            raise Conflict(
                f"Subscription [{later.subscription_id}] is scheduled after [{sub.id}]: "
                "cancel that one first",
                conflicting_entity_id=later.subscription_id,
            )
        sub.active_to, sub.updated_at = end, now
        self._write(sub.customer_id, [sub], lambda spans: self._replace_span(spans, sub))
        self.run_due([sub.customer_id], now)
        return self.get(sub.id)

    def unschedule_cancelation(self, sub_id: str) -> Subscription:
        sub = self.get(sub_id)
        now = self.now_for(sub.customer_id)
        self._ended(sub, now)
        if sub.active_to is None:
            raise Conflict(
                f"Subscription [{sub.id}] has no scheduled cancelation", conflicting_entity_id=sub.id
            )
        later = self._later(sub)
        if later is not None:
            raise Conflict(
                f"Subscription [{later.subscription_id}] is scheduled after [{sub.id}]: it would overlap",
                code=ONLY_SINGLE_SUBSCRIPTION,
                conflicting_entity_id=later.subscription_id,
            )
        sub.active_to, sub.updated_at = None, now
        self._write(sub.customer_id, [sub], lambda spans: self._replace_span(spans, sub))
        return self.get(sub.id)

    @staticmethod
    def _replace_span(spans: builtins.list[Span], sub: Subscription) -> builtins.list[Span]:
        if not any(s.subscription_id == sub.id for s in spans):
            raise Conflict(f"Subscription [{sub.id}] is no longer on its customer's timeline")
        return [
            Span(sub.id, sub.active_from, sub.active_to) if s.subscription_id == sub.id else s for s in spans
        ]

    # -- change ----------------------------------------------------------------------------------
    def change(self, sub_id: str, req: ChangeSubscriptionRequest) -> ChangeResult:
        current = self.get(sub_id)
        customer = self._customer(req.customer)
        if customer.id != current.customer_id:
            field = "customer.id" if req.customer.id is not None else "customer.key"
            raise InvalidInput.field(
                field, f"subscription [{sub_id}] belongs to customer [{current.customer_id}]"
            )
        now = self.now_for(customer.id)
        self._ended(current, now)
        plan = self._plan(req.plan, now)
        self._currency(customer, plan, self._plan_field(req.plan))
        at = self._boundary(current, req.timing, now)
        if current.active_to is not None and at >= current.active_to:
            raise Conflict(
                f"Subscription [{sub_id}] ends before the change would take effect",
                conflicting_entity_id=sub_id,
            )
        nxt = self._build(customer.id, plan, at, req.billing_anchor or current.anchor_origin, now, req)
        if req.timing == Timing.IMMEDIATE:
            # An immediate upgrade keeps the usage already measured in the current usage period.
            nxt.keep_usage_since = current.active_from
        current.active_to, current.updated_at = at, now
        self._write(customer.id, [current, nxt], lambda spans: self._check_free(spans, nxt, current))
        self.run_due([customer.id], now)
        return ChangeResult(self.get(current.id), self.get(nxt.id))

    # -- what falls due --------------------------------------------------------------------------
    def run_due(self, customer_ids: Sequence[str], until: datetime) -> int:
        """Perform what is due up to `until` for these customers, in time order: a subscription that
        ended (or left a phase) gives up its entitlements before the next one (or phase) takes its
        own. Idempotent and forward-only: a second run (or one for an earlier instant) finds each
        subscription's `applied` at or past its target.
        Returns how many subscriptions changed."""
        changed = 0
        for customer_id in dict.fromkeys(customer_ids):
            changed += self._advance(customer_id, until)
        return changed

    def next_due(self, customer_ids: Sequence[str], after: datetime) -> datetime | None:
        """The earliest instant strictly after `after` at which one of these customers' subscriptions
        starts, changes phase or ends: a test clock's advance steps there (shared/testclocks/due.py),
        so entitlements of a new phase exist from the phase's start, not from a later step."""
        times = [
            t
            for customer_id in dict.fromkeys(customer_ids)
            for sub in self.repo.for_customer(customer_id)[1]
            for t in sub.transitions()
            if t > after
        ]
        return min(times, default=None)

    def sweep(self) -> int:
        """The scheduled job: every customer with something due by its own now gets `run_due`.
        (Reads every subscription: one Query of the `SUB` index; a due index comes with billing.)"""
        due: dict[str, datetime] = {}
        for sub in self.repo.list_all():
            now = due.get(sub.customer_id) or self.now_for(sub.customer_id)
            if sub.due_at(now):
                due[sub.customer_id] = now
        advanced = 0
        for customer_id, now in due.items():
            try:
                advanced += self.run_due([customer_id], now)
            except Conflict:
                # Busy with a concurrent change: the next run picks it up; the others go on.
                logger.warning("subscription advance deferred", extra={"customer": customer_id})
        return advanced

    def _advance(self, customer_id: str, until: datetime) -> int:
        for _ in range(ATTEMPTS):
            spans, subs, rev = self.repo.for_customer(customer_id)
            due = [s for s in subs if s.due_at(until)]
            if not due:
                return 0
            # Teardown first (a subscription ending at T frees its features for the one starting at T).
            for sub in due:
                self._teardown(sub)
            for sub in due:
                target = sub.target_at(until)
                if target not in (None, ENDED):
                    self._materialise(sub, str(target))
                sub.applied = target
            try:
                self.repo.save(customer_id, rev, spans, due)
                return len(due)
            except TimelineChanged:
                continue
        raise Conflict(f"Subscriptions of customer [{customer_id}] are changing concurrently; retry")

    def _teardown(self, sub: Subscription) -> None:
        for feature_key, ent_id in list(sub.entitlements.items()):
            with contextlib.suppress(DomainError):  # already deleted (a retried run, or by hand)
                self.entitlements.delete(sub.customer_id, ent_id)
            del sub.entitlements[feature_key]

    def _materialise(self, sub: Subscription, phase_key: str) -> None:
        found = self.plans.get(sub.plan_id)
        if found is None:
            return
        plan = found[0]
        phase = next((p for p in plan.phases if p.key == phase_key), None)
        span = next((p for p in sub.phases if p.key == phase_key), None)
        if phase is None or span is None:
            return
        first = span == sub.phases[0]
        for rc in phase.rate_cards:
            if rc.entitlement is None or rc.feature_id is None:
                continue
            req = self._entitlement_request(sub, rc, span.start, first)
            try:
                created = self.entitlements.create(sub.customer_id, req).entitlement
            except Conflict as exc:
                holder = exc.conflicting.get("conflicting_entity_id")
                ent = self.entitlements.repo.get(str(holder)) if holder else None
                if ent is None or (ent.metadata or {}).get("subscription_id") != sub.id:
                    logger.warning(
                        "subscription entitlement not materialised: the feature is held",
                        extra={"subscription": sub.id, "feature": rc.feature_id, "holder": holder},
                    )
                    continue
                created = ent  # ours, from a run that crashed before it recorded it
            except DomainError as exc:
                # The catalog changed since the plan was published (a feature archived, a meter
                # deleted): the subscription stands, without that entitlement, and says why.
                logger.warning(
                    "subscription entitlement not materialised",
                    extra={"subscription": sub.id, "feature": rc.feature_id, "reason": exc.message},
                )
                continue
            sub.entitlements[created.feature_key] = created.id

    def _entitlement_request(
        self, sub: Subscription, rc: RateCard, start: datetime, first: bool
    ) -> CreateEntitlementRequest:
        t = rc.entitlement
        assert t is not None
        body: dict[str, Any] = {
            "type": t.type.value,
            "feature_id": rc.feature_id,
            "metadata": {"subscription_id": sub.id, "item": rc.key},
        }
        if t.type == EntitlementType.METERED:
            interval = t.usage_period or rc.billing_cadence or sub.billing_cadence
            measure_from = start
            if first and sub.keep_usage_since is not None:
                period_start = periods.period_at(sub.anchor_origin, interval, start).start
                measure_from = max(period_start, sub.keep_usage_since)
            body.update(
                usage_period={"interval": interval, "anchor": format_rfc3339(sub.anchor_origin)},
                measure_usage_from=format_rfc3339(measure_from),
                is_soft_limit=t.is_soft_limit,
            )
            if t.limit is not None:
                body["issue"] = {"amount": str(t.limit)}
        elif t.type == EntitlementType.STATIC:
            body["config"] = t.config
        return CreateEntitlementRequest.model_validate(body)

    # -- add-ons ---------------------------------------------------------------------------------
    def addons(self, sub_id: str) -> builtins.list[SubscriptionAddon]:
        self.get(sub_id)
        return self.repo.addons(sub_id)

    def list_addons(self, sub_id: str, query: ListSubscriptionAddonsQuery) -> Listed[SubscriptionAddon]:
        return Listed.of(query.page, query.order(self.addons(sub_id)))

    def addon(self, sub_id: str, sub_addon_id: str) -> SubscriptionAddon:
        found = next((a for a in self.addons(sub_id) if a.id == sub_addon_id), None)
        if found is None:
            raise NotFound(f"Add-on [{sub_addon_id}] of subscription [{sub_id}] not found")
        return found

    def addon_version(self, addon_id: str) -> Addon | None:
        found = self.addon_versions.get(addon_id) if self.addon_versions else None
        return found[0] if found else None

    def _quantity(self, addon: Addon, quantity: int, max_quantity: int | None) -> None:
        if addon.instance_type == InstanceType.SINGLE and quantity > 1:
            raise InvalidInput.field("quantity", f"add-on [{addon.key}] is single-instance: quantity is 1")
        if max_quantity is not None and quantity > max_quantity:
            raise InvalidInput.field(
                "quantity", f"the plan offers at most {max_quantity} of add-on [{addon.key}]"
            )

    def _offer(self, sub: Subscription, addon_id: str) -> Any:
        return next((link for link in self.plans.links(sub.plan_id) if link.addon_id == addon_id), None)

    def add_addon(self, sub_id: str, req: CreateSubscriptionAddonRequest) -> SubscriptionAddon:
        sub = self.get(sub_id)
        now = self.now_for(sub.customer_id)
        self._ended(sub, now)
        addon = self.addon_version(req.addon.id)
        if addon is None or addon.deleted_at is not None:
            raise InvalidInput.field("addon.id", f"add-on [{req.addon.id}] not found", "missing_reference")
        if addon.status(now) != PlanStatus.ACTIVE:
            raise InvalidInput.field(
                "addon.id", f"add-on [{addon.key}] is {addon.status(now).value}, not active"
            )
        if addon.currency != sub.currency:
            raise InvalidInput.field(
                "addon.id",
                f"add-on currency {addon.currency} does not match the subscription's {sub.currency}",
            )
        link = self._offer(sub, addon.id)
        if link is None:
            raise InvalidInput.field("addon.id", f"plan [{sub.plan_key}] does not offer add-on [{addon.key}]")
        self._quantity(addon, req.quantity, link.max_quantity)
        at = self._boundary(sub, req.timing, now)
        phase = next((p for p in sub.phases if p.key == link.from_plan_phase), None)
        if phase is not None and at < phase.start:
            raise InvalidInput.field(
                "timing",
                f"add-on [{addon.key}] is offered from phase [{phase.key}] ({format_rfc3339(phase.start)})",
            )
        created = SubscriptionAddon(
            id=new_id(),
            subscription_id=sub.id,
            addon_id=addon.id,
            name=req.name or addon.name,
            description=req.description,
            labels=req.labels,
            segments=(QuantitySegment(at, req.quantity),),
            created_at=now,
            updated_at=now,
        )

        def check() -> SubscriptionAddon:
            if any(a.addon_id == addon.id for a in self.repo.addons(sub.id)):
                raise Conflict(
                    f"Subscription [{sub.id}] already has add-on [{addon.key}]",
                    conflicting_entity_id=addon.id,
                )
            return created

        self._write(sub.customer_id, [], lambda spans: spans, check)
        return created

    def update_addon(
        self, sub_id: str, sub_addon_id: str, req: UpdateSubscriptionAddonRequest
    ) -> SubscriptionAddon:
        sub = self.get(sub_id)
        now = self.now_for(sub.customer_id)
        self._ended(sub, now)
        current = self.addon(sub_id, sub_addon_id)
        addon = self.addon_version(current.addon_id)
        link = self._offer(sub, current.addon_id)
        if addon is not None:
            self._quantity(addon, req.quantity, link.max_quantity if link else None)
        at = max(self._boundary(sub, req.timing, now), current.segments[0].start)
        # A later change replaces whatever was scheduled from its time on.
        kept = tuple(s for s in current.segments if s.start < at)
        current.segments = (*kept, QuantitySegment(at, req.quantity))
        current.updated_at = now
        self._write(sub.customer_id, [], lambda spans: spans, lambda: current)
        return current
