"""Progressive billing never changes a period's total (engine-rules §2.7).

For every price type — with or without a unit config, usage and percentage discounts, minimum and
maximum spend, in a 0-, 2- or 3-decimal currency — a period rated as one line and the same period
split at random instants into N lines (each knowing the usage metered before it) bill the same
amount, discounts, charges and total, to the last unit of the currency. Every detailed amount is on
the currency's grid and no line bills a negative total.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.catalog.models import (
    Commitments,
    Discounts,
    PaymentTerm,
    Price,
    PriceType,
    Rounding,
    Tier,
    UnitConfig,
    UnitOperation,
)
from shared.rating import BillableLine, Period, Proration, Totals, rate

START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 31 * 24
MONTH = Period(START, START + timedelta(hours=HOURS))


def decimals(low: int, high: int, places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low * 10**places, high * 10**places).map(lambda n: Decimal(n).scaleb(-places))


money = decimals(0, 5, 4)  # unit prices finer than the currency
fee = decimals(0, 500, 2)


@st.composite
def tier_lists(draw) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(decimals(1, 2000, 1), min_size=0, max_size=4)))
    out = []
    for up_to in [*bounds, None]:
        unit = draw(st.none() | money)
        flat = draw(st.none() | fee) if unit is not None else draw(fee)
        out.append(Tier(up_to=up_to, unit=unit, flat=flat))
    return tuple(out)


@st.composite
def prices(draw, kind: PriceType) -> Price:
    if kind in (PriceType.GRADUATED, PriceType.VOLUME):
        return Price(kind, tiers=draw(tier_lists()))
    if kind is PriceType.UNIT:
        return Price(kind, amount=draw(money))
    if kind is PriceType.FLAT:
        return Price(kind, amount=draw(fee))
    return Price(kind)


unit_configs = st.none() | st.builds(
    UnitConfig,
    operation=st.sampled_from(UnitOperation),
    conversion_factor=decimals(1, 50, 1).filter(bool),
    rounding=st.sampled_from(Rounding),
    precision=st.integers(0, 3),
)


@st.composite
def commitments(draw) -> Commitments | None:
    low, high = draw(st.none() | fee), draw(st.none() | fee)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return None if low is None and high is None else Commitments(minimum=low, maximum=high)


@st.composite
def cases(draw, kind: PriceType):
    usage = kind in (PriceType.UNIT, PriceType.GRADUATED, PriceType.VOLUME)
    price = draw(prices(kind))
    n = draw(st.integers(1, 6))
    hours = sorted(draw(st.sets(st.integers(1, HOURS - 1), min_size=n - 1, max_size=n - 1)))
    total = draw(decimals(0, 3000, 3))
    cuts = sorted(
        draw(st.lists(decimals(0, 3000, 3).map(lambda q: min(q, total)), min_size=n - 1, max_size=n - 1))
    )
    common = {
        "name": "x",
        "currency": draw(st.sampled_from(["USD", "JPY", "KWD"])),
        "price": price,
        "payment_term": draw(st.sampled_from(PaymentTerm))
        if kind is PriceType.FLAT
        else PaymentTerm.IN_ARREARS,
        "unit_config": draw(unit_configs) if usage else None,
        "discounts": Discounts(
            percentage=draw(st.none() | decimals(0, 100, 2)),
            usage=draw(st.none() | decimals(0, 500, 1)) if usage else None,
        ),
        "commitments": draw(commitments()) if usage else None,
        # a flat fee over a service period shorter than its month is prorated
        "proration": Proration(Period(START - timedelta(days=3), MONTH.end))
        if kind is PriceType.FLAT
        else None,
    }
    return common, [Decimal(0), *cuts, total], [START + timedelta(hours=h) for h in (0, *hours, HOURS)]


def _rate_split(common, quantities, instants):
    return [
        rate(
            BillableLine(
                period=Period(instants[i], instants[i + 1]),
                split_period=MONTH,
                pre_line_quantity=quantities[i],
                quantity=quantities[i + 1] - quantities[i],
                **common,
            )
        )
        for i in range(len(instants) - 1)
    ]


def _check(case) -> None:
    common, quantities, instants = case
    whole = rate(BillableLine(period=MONTH, quantity=quantities[-1], **common))
    pieces = _rate_split(common, quantities, instants)
    assert sum((p.totals for p in pieces), Totals()) == whole.totals
    grid = Decimal(1).scaleb(-whole.precision)
    for r in (whole, *pieces):
        assert r.totals.total >= 0
        for d in r.detailed:
            assert d.amount == d.amount.quantize(grid)
            assert all(x.amount > 0 for x in d.discounts)


@settings(max_examples=100, deadline=None)
@given(cases(PriceType.UNIT))
def test_split_never_changes_the_total_unit(case):
    _check(case)


@settings(max_examples=100, deadline=None)
@given(cases(PriceType.GRADUATED))
def test_split_never_changes_the_total_graduated(case):
    _check(case)


@settings(max_examples=100, deadline=None)
@given(cases(PriceType.VOLUME))
def test_split_never_changes_the_total_volume(case):
    _check(case)


@settings(max_examples=60, deadline=None)
@given(cases(PriceType.FLAT))
def test_split_never_changes_the_total_flat(case):
    _check(case)


@settings(max_examples=20, deadline=None)
@given(cases(PriceType.FREE))
def test_split_never_changes_the_total_free(case):
    _check(case)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([PriceType.UNIT, PriceType.GRADUATED]).flatmap(cases), decimals(0, 1000, 3))
def test_late_usage_bills_what_the_whole_usage_would_have(case, late):
    # Without a minimum spend (charged once, with the period), a period billed in N lines plus a
    # late line bills exactly what the whole usage bills as one line.
    common, quantities, instants = case
    if common["commitments"] is not None:
        common = {**common, "commitments": Commitments(maximum=common["commitments"].maximum)}
    pieces = _rate_split(common, quantities, instants)
    pieces.append(
        rate(BillableLine(period=MONTH, pre_line_quantity=quantities[-1], quantity=late, late=True, **common))
    )
    whole = rate(BillableLine(period=MONTH, quantity=quantities[-1] + late, **common))
    assert sum((p.totals for p in pieces), Totals()) == whole.totals
