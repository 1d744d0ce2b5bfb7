"""What a subscription bills, as `Billable`s (engine-rules §2.7, §2.8; product.md §7.5, §11). Pure: no
I/O, no clock; the same inputs give the same billables, keys and values, so a re-run changes nothing.

Phases. A phase runs `[its start, the next phase's start)`, cut at the subscription's `active_to`; a
phase that never ran (empty after the cut) bills nothing, nor does a subscription canceled before it
started.

Items. Every rate card of the phase with a price is an item (free prices and zero flat amounts bill
nothing), and so is every rate card of each add-on, over the add-on's quantity segments within the
phase (a segment change splits the period; quantity-0 segments bill nothing). `Billable.quantity` is
1 for plan items and the segment's quantity for add-on items.

Service periods. A recurring item's service periods are the aligned periods of its rate card's cadence,
`[anchor + k·cadence, anchor + (k+1)·cadence)` counted from the subscription's anchor as given
(`anchor_origin`, see `shared.subscriptions.periods`: the 31st comes back after Feb 28), cut to the
phase (or add-on segment). A one-time item (a flat price without cadence) has one service period:
the phase (segment) span; an open-ended one has `[start, start)` when paid in advance and is not billed
yet when paid in arrears (its end is unknown). An add-on's one-time fee is billed once, for the
add-on's first segment, in the phase it starts in (a later quantity change or phase does not charge it
again).

Billing period. The plan-cadence aligned period, cut to the phase (engine-rules §2.8 "clipped to
phase/subscription boundaries"), containing the service period's start for an in-advance flat fee
and its last instant otherwise (a card cadence longer than the plan's, P3M under P1M, is billed with
the billing period it ends in).

invoice_at. In-advance flat fees: the billing period's start, or the item's (segment's) start when
later (a P1D in-advance fee under a P1M plan is invoiced for the whole month at its start; a seat added
on the 20th on the 20th). Everything else: max(service end, billing period end), so a P1D usage card
under a P1M plan gives daily lines all invoiced at the month's end, and a cancellation or a phase
change invoices what it cut short at that instant.

Proration (flat prices only). `Proration(full_period=the uncut cadence period, enabled=the plan's
pro_rating_enabled, subscription_end=active_to, end_mode)`: a first period cut by a mid-period start,
a phase change or an add-on segment is prorated; a last period cut by `active_to` is prorated under
`bill_actual_period` and charged in full under `bill_full_period` (`shared.rating.proration`). Usage
prices are never prorated: their period is shorter and holds less usage. One-time fees are never
prorated.

Sync identity (`Billable.key`). Plan items: `{subscription_id}/{phase_key}/{item_key}/v[0]/period[{i}]`
(a plan item never changes inside a phase: a plan change makes a new subscription). Add-on items:
`{subscription_id}/{phase_key}/addon:{addon_id}:{item_key}/v[{n}]/period[{i}]`, `n` the add-on's n-th
quantity segment overlapping the phase (0 for the one in force at the phase's start or the first one
in it). `i` counts the item cadence's aligned periods from the phase's first one (0), whatever the
version, so a split period keeps its index under both versions. One-time items use `period[0]`.

Horizon. Billables whose service period starts before `until` (the invoicing core passes the end of
the aligned billing period containing now); nothing past `active_to`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.catalog.models import Addon, PaymentTerm, Plan, PriceType, RateCard
from shared.invoices.billables import Billable, Origin
from shared.rating.models import EndProrationMode, Period, Proration
from shared.subscriptions import periods
from shared.subscriptions.models import Subscription, SubscriptionAddon

_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class _Version:
    """One version of an item inside a phase: `[start, end)` (end None: open) with a quantity."""

    index: int
    start: datetime
    end: datetime | None
    quantity: int
    bills_one_time: bool = True  # add-ons: only the first segment bills a one-time fee


@dataclass
class _Phase:
    sub: Subscription
    plan: Plan
    key: str
    start: datetime
    end: datetime | None
    until: datetime
    end_mode: EndProrationMode
    feature_keys: Mapping[str, str]
    # The last plan period found: the lines of a shorter card cadence fall in the same one (a boundary
    # costs a calendar computation, ~30 µs, which dominated a P1D card's lines).
    _last: periods.Period | None = None

    def billing_period(self, at: datetime) -> Period:
        """The plan-cadence aligned period containing `at`, cut to the phase."""
        p = self._last
        if p is None or not p.contains(at):
            p = self._last = periods.period_at(self.sub.anchor_origin, self.sub.billing_cadence, at)
        end = p.end if self.end is None else min(p.end, self.end)
        return Period(max(p.start, self.start), end)


def phase_spans(sub: Subscription) -> list[tuple[str, datetime, datetime | None]]:
    """(phase key, start, end) of each phase that runs, cut at `active_to` (end None: open)."""
    out: list[tuple[str, datetime, datetime | None]] = []
    for i, phase in enumerate(sub.phases):
        end = sub.phases[i + 1].start if i + 1 < len(sub.phases) else None
        if sub.active_to is not None:
            end = sub.active_to if end is None else min(end, sub.active_to)
        start = max(phase.start, sub.active_from)
        if end is None or start < end:
            out.append((phase.key, start, end))
    return out


def billables_for(
    subscription: Subscription,
    plan: Plan,
    addons: Sequence[tuple[SubscriptionAddon, Addon]] = (),
    *,
    until: datetime,
    end_mode: EndProrationMode = EndProrationMode.BILL_ACTUAL_PERIOD,
    feature_keys: Mapping[str, str] | None = None,
) -> list[Billable]:
    """Everything `subscription` (on `plan`, its plan version, with its add-ons and their catalog
    versions) bills for service starting before `until`, in a stable order: phase by phase, the
    plan's rate cards then the add-ons', period by period. `feature_keys` maps a rate card's feature
    id to its key (usage prices name the meter's feature by key)."""
    if plan.id != subscription.plan_id:
        raise ValueError(f"plan {plan.id} is not subscription {subscription.id}'s ({subscription.plan_id})")
    phases = {p.key: p for p in plan.phases}
    out: list[Billable] = []
    for key, start, end in phase_spans(subscription):
        phase = phases.get(key)
        if phase is None:
            continue
        ctx = _Phase(subscription, plan, key, start, end, until, end_mode, feature_keys or {})
        whole = (_Version(0, start, end, 1),)
        for rc in phase.rate_cards:
            out.extend(_item(ctx, rc, rc.key, whole, None))
        for sub_addon, addon in addons:
            versions = _addon_versions(sub_addon, start, end)
            for rc in addon.rate_cards:
                out.extend(_item(ctx, rc, f"addon:{addon.id}:{rc.key}", versions, addon.id))
    return out


def next_start(
    subscription: Subscription,
    plan: Plan,
    addons: Sequence[tuple[SubscriptionAddon, Addon]] = (),
    *,
    after: datetime,
) -> datetime | None:
    """The first instant strictly after `after` at which `billables_for` returns more (a service
    period starts: a cadence boundary, a phase, an add-on segment), None if it never will. Between
    `after` and that instant the billables are the same (the horizon is the only input that moves),
    so a sync at `after` stays current until then: invoicing's sync index waits for it. Computed
    from the boundaries, never by walking the periods since the start."""
    if plan.id != subscription.plan_id:
        raise ValueError(f"plan {plan.id} is not subscription {subscription.id}'s ({subscription.plan_id})")
    phases = {p.key: p for p in plan.phases}
    origin = subscription.anchor_origin
    found: list[datetime] = []
    for key, start, end in phase_spans(subscription):
        phase = phases.get(key)
        if phase is None:
            continue
        items: list[tuple[RateCard, tuple[_Version, ...]]] = [
            (rc, (_Version(0, start, end, 1),)) for rc in phase.rate_cards
        ]
        for sub_addon, addon in addons:
            versions = tuple(_addon_versions(sub_addon, start, end))
            items += [(rc, versions) for rc in addon.rate_cards]
        for rc, versions in items:
            if not _billable_price(rc):
                continue
            for v in versions:
                if v.quantity <= 0:
                    continue
                if rc.billing_cadence is None:  # `_one_time`: its start, once its end is known or paid ahead
                    if (
                        v.bills_one_time
                        and v.start > after
                        and (v.end is not None or rc.payment_term is PaymentTerm.IN_ADVANCE)
                    ):
                        found.append(v.start)
                elif v.start > after:
                    found.append(v.start)
                else:  # `_recurring`: the next aligned boundary, while the version runs
                    nxt = periods.next_boundary(origin, rc.billing_cadence, after)
                    if v.end is None or nxt < v.end:
                        found.append(nxt)
    return min(found, default=None)


def _addon_versions(addon: SubscriptionAddon, start: datetime, end: datetime | None) -> list[_Version]:
    """The add-on's quantity segments that overlap `[start, end)`, cut to it, numbered in order."""
    first_billed = next((s.start for s in addon.segments if s.quantity > 0), None)
    out: list[_Version] = []
    for i, seg in enumerate(addon.segments):
        seg_end = addon.segments[i + 1].start if i + 1 < len(addon.segments) else None
        lo = max(seg.start, start)
        hi = seg_end if end is None else end if seg_end is None else min(seg_end, end)
        if hi is not None and hi <= lo:
            continue
        # A one-time fee: in the phase the add-on's first billed segment starts in, not again in later ones.
        once = seg.start == first_billed and seg.start >= start
        out.append(_Version(len(out), lo, hi, seg.quantity, bills_one_time=once))
    return out


def _billable_price(rc: RateCard) -> bool:
    if rc.price.type is PriceType.FREE:
        return False
    return not (rc.price.type is PriceType.FLAT and not rc.price.amount)


def _item(
    ctx: _Phase, rc: RateCard, item_key: str, versions: Sequence[_Version], addon_id: str | None
) -> Iterator[Billable]:
    if not _billable_price(rc):
        return
    for version in versions:
        if version.quantity <= 0:
            continue
        if rc.billing_cadence is None:
            if version.bills_one_time:
                yield from _one_time(ctx, rc, item_key, version, addon_id)
        else:
            yield from _recurring(ctx, rc, rc.billing_cadence, item_key, version, addon_id)


def _recurring(
    ctx: _Phase, rc: RateCard, cadence: str, item_key: str, version: _Version, addon_id: str | None
) -> Iterator[Billable]:
    origin = ctx.sub.anchor_origin
    first = periods.index_at(origin, cadence, ctx.start)  # period[0]: the phase's first period
    k = periods.index_at(origin, cadence, version.start)
    flat = rc.price.type is PriceType.FLAT
    lo = periods.boundary(origin, cadence, k)
    while True:
        full = periods.Period(lo, periods.boundary(origin, cadence, k + 1))
        start = max(full.start, version.start)
        end = full.end if version.end is None else min(full.end, version.end)
        if start >= ctx.until:
            return
        proration = (
            Proration(
                full_period=Period(full.start, full.end),
                enabled=ctx.plan.pro_rating_enabled,
                subscription_end=ctx.sub.active_to,
                end_mode=ctx.end_mode,
            )
            if flat
            else None
        )
        yield _billable(ctx, rc, item_key, version, k - first, Period(start, end), addon_id, proration)
        if version.end is not None and end >= version.end:
            return
        k, lo = k + 1, full.end


def _one_time(
    ctx: _Phase, rc: RateCard, item_key: str, version: _Version, addon_id: str | None
) -> Iterator[Billable]:
    if version.start >= ctx.until:
        return
    if version.end is None:
        if rc.payment_term is not PaymentTerm.IN_ADVANCE:
            return  # in arrears of an end that is not known yet
        service = Period(version.start, version.start)
    else:
        service = Period(version.start, version.end)
    yield _billable(ctx, rc, item_key, version, 0, service, addon_id, None)


def _billable(
    ctx: _Phase,
    rc: RateCard,
    item_key: str,
    version: _Version,
    index: int,
    service: Period,
    addon_id: str | None,
    proration: Proration | None,
) -> Billable:
    in_advance = rc.price.type is PriceType.FLAT and rc.payment_term is PaymentTerm.IN_ADVANCE
    if in_advance or service.end <= service.start:
        billing = ctx.billing_period(service.start)
    else:
        billing = ctx.billing_period(service.end - _INSTANT)
    invoice_at = max(billing.start, version.start) if in_advance else max(service.end, billing.end)
    sub = ctx.sub
    return Billable(
        key=f"{sub.id}/{ctx.key}/{item_key}/v[{version.index}]/period[{index}]",
        customer_id=sub.customer_id,
        currency=sub.currency,
        name=rc.name,
        description=rc.description,
        price=rc.price,
        service_period=service,
        billing_period=billing,
        invoice_at=invoice_at,
        origin=Origin(subscription_id=sub.id, phase_key=ctx.key, item_key=rc.key, addon_id=addon_id),
        payment_term=rc.payment_term,
        feature_key=ctx.feature_keys.get(rc.feature_id) if rc.feature_id else None,
        unit_config=rc.unit_config,
        discounts=rc.discounts,
        commitments=rc.commitments,
        tax_config=rc.tax_config,
        proration=proration,
        quantity=version.quantity,
    )
