"""What a subscription bills never loses or double-bills time (engine-rules §2.8), for any anchor,
start, phase lengths, cancellation, card cadence aligned with the plan's, and add-on quantity timeline.

Per phase and item, the service periods of all its versions tile the item's span from the phase start
up to the horizon (or the phase's end): no gap, no overlap. Each service period lies inside its full
cadence period (flat prices), each billing period inside the phase; `invoice_at` is never before the
service's billing period starts nor after the service starts when paid in advance, and never before
the service and its billing period end otherwise; keys are unique and a re-run gives the same
billables.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.catalog.models import Addon, InstanceType, PaymentTerm, Phase, Plan, Price, PriceType, RateCard
from shared.invoices.lines import billables_for, next_start
from shared.subscriptions.models import PhaseSpan, QuantitySegment, Subscription, SubscriptionAddon

BASE = datetime(2027, 1, 1, tzinfo=UTC)
# (plan cadence, card cadences that align with it)
CADENCES = {"P1M": ["P1M", "P1D", "P3M"], "P1W": ["P1W", "P1D"], "P3M": ["P1M", "P3M"]}


def card(key: str, cadence: str | None, flat: bool, advance: bool) -> RateCard:
    price = Price(PriceType.FLAT, amount=Decimal(7)) if flat else Price(PriceType.UNIT, amount=Decimal(1))
    term = PaymentTerm.IN_ADVANCE if flat and advance else PaymentTerm.IN_ARREARS
    return RateCard(key=key, name=key, price=price, billing_cadence=cadence, payment_term=term)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Subscription, Plan, list[tuple[SubscriptionAddon, Addon]], datetime]:
    plan_cadence = draw(st.sampled_from(sorted(CADENCES)))
    hours = st.integers(0, 24 * 120)
    anchor = BASE + timedelta(hours=draw(st.integers(0, 24 * 60)))
    start = anchor + timedelta(hours=draw(st.integers(0, 24 * 60)))
    durations = draw(st.lists(st.integers(1, 24 * 50), max_size=2))  # hours of every phase but the last
    cards = []
    for i in range(draw(st.integers(1, 3))):
        cadence = draw(st.sampled_from([*CADENCES[plan_cadence], None]))
        flat = cadence is None or draw(st.booleans())
        cards.append(card(f"c{i}", cadence, flat, draw(st.booleans())))
    phases, spans, at = [], [], start
    for i, hrs in enumerate([*durations, None]):
        phases.append(Phase(f"p{i}", f"P{i}", tuple(cards), duration=f"PT{hrs}H" if hrs else None))
        spans.append(PhaseSpan(f"p{i}", at))
        at += timedelta(hours=hrs or 0)
    end = start + timedelta(hours=draw(hours)) if draw(st.booleans()) else None
    sub = Subscription(
        id="s",
        customer_id="c",
        plan_id="p",
        plan_key="p",
        plan_version=1,
        currency="USD",
        billing_cadence=plan_cadence,
        anchor_origin=anchor,
        billing_anchor=anchor,
        active_from=start,
        active_to=end,
        phases=tuple(spans),
        created_at=start,
        updated_at=start,
    )
    plan = Plan("p", "p", 1, "P", "USD", plan_cadence, tuple(phases), start, start)
    offsets = sorted(set(draw(st.lists(hours, min_size=1, max_size=4))))
    segments = tuple(QuantitySegment(start + timedelta(hours=h), draw(st.integers(0, 3))) for h in offsets)
    addon_cards = (card("seat", draw(st.sampled_from(CADENCES[plan_cadence])), True, draw(st.booleans())),)
    addon = Addon("a", "a", 1, "A", "USD", InstanceType.MULTIPLE, addon_cards, start, start)
    bought = SubscriptionAddon("sa", "s", "a", "A", segments, start, start)
    until = start + timedelta(hours=draw(st.integers(0, 24 * 120)))
    return sub, plan, [(bought, addon)], until


@settings(max_examples=80, deadline=None)
@given(cases())
def test_service_periods_tile_each_item(case: tuple) -> None:
    sub, plan, addons, until = case
    got = billables_for(sub, plan, addons, until=until)
    assert got == billables_for(sub, plan, addons, until=until)
    assert len({b.key for b in got}) == len(got)
    # each phase's span, worked out here: to the next phase's start, cut at active_to
    bounds = [p.start for p in sub.phases[1:]] + [None]
    ends = [e if sub.active_to is None else min(e or sub.active_to, sub.active_to) for e in bounds]
    spans = {p.key: (p.start, end) for p, end in zip(sub.phases, ends, strict=True)}
    by_item: dict[tuple[str, str | None], list] = defaultdict(list)
    for b in got:
        phase_start, phase_end = spans[b.origin.phase_key]
        s, e = b.service_period.start, b.service_period.end
        assert phase_start <= s <= e and (phase_end is None or e <= phase_end)
        assert s < until  # the horizon
        assert sub.active_to is None or e <= sub.active_to
        assert phase_start <= b.billing_period.start < b.billing_period.end
        assert phase_end is None or b.billing_period.end <= phase_end
        if b.payment_term is PaymentTerm.IN_ADVANCE:  # by the service start, not before its period's
            assert b.billing_period.start <= b.invoice_at <= s
        else:
            assert b.invoice_at >= e and b.invoice_at >= b.billing_period.end
        if b.proration is not None:  # flat recurring
            full = b.proration.full_period
            assert full.start <= s and e <= full.end and full.end - full.start > timedelta(0)
        recurring = (
            b.origin.addon_id
            or next(
                rc
                for p in plan.phases
                if p.key == b.origin.phase_key
                for rc in p.rate_cards
                if rc.key == b.origin.item_key
            ).billing_cadence
        )
        if recurring:
            by_item[(b.origin.phase_key, f"{b.origin.addon_id}:{b.origin.item_key}")].append(b)
    for (phase_key, item), lines in by_item.items():
        lines.sort(key=lambda b: b.service_period.start)
        for a, b in pairwise(lines):  # contiguous where the item was billed
            assert a.service_period.end <= b.service_period.start, (phase_key, item)
            if not item.startswith("a:"):  # a plan item runs the whole phase: no gap at all
                assert a.service_period.end == b.service_period.start, (phase_key, item)
        if item.startswith("None:"):
            phase_start, phase_end = spans[phase_key]
            assert lines[0].service_period.start == phase_start
            last = lines[-1].service_period.end
            # the last period reaches the phase end, or the horizon lies before the next one starts
            assert last == phase_end or last >= until


_US = timedelta(microseconds=1)


def _keys(
    sub: Subscription, plan: Plan, addons: list[tuple[SubscriptionAddon, Addon]], t: datetime
) -> set[str]:
    """What a sync at `t` gets (the source's horizon: service starting at or before `t`)."""
    return {b.key for b in billables_for(sub, plan, addons, until=t + _US)}


@settings(max_examples=300, deadline=None)
@given(cases(), st.integers(0, 24 * 60))
def test_next_start_is_when_the_billables_next_grow(
    case: tuple[Subscription, Plan, list[tuple[SubscriptionAddon, Addon]], datetime], probe: int
) -> None:
    """The sync index waits until `next_start(after=t)`: up to just before it a sync gets what a
    sync at `t` got, and at it one more billable (a service period starts); None: never more."""
    sub, plan, addons, t = case
    now = _keys(sub, plan, addons, t)
    nxt = next_start(sub, plan, addons, after=t)
    if nxt is None:
        assert _keys(sub, plan, addons, t + timedelta(days=400)) == now
        return
    assert nxt > t
    assert _keys(sub, plan, addons, nxt - _US) == now
    assert _keys(sub, plan, addons, min(t + timedelta(hours=probe), nxt - _US)) == now
    assert _keys(sub, plan, addons, nxt) > now
