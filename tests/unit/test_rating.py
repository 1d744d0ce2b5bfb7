"""The rating engine against engine-rules §2.7-2.8 and product.md §7.4, §8, §9, §11.3.

Written from the rules, not from the code: every expected number is worked out by hand in the
comment next to it. The period is January 2026 (31 days) unless a test says otherwise; `line()`
builds a billable line in USD for the whole month, `rows()` reads a rated line back as
(key, quantity, amount) triples.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.catalog.models import (
    Commitments,
    Discounts,
    PaymentTerm,
    Price,
    PriceType,
    RateCard,
    Rounding,
    Tier,
    UnitConfig,
    UnitOperation,
)
from shared.core.errors import InvalidInput
from shared.rating import (
    BillableLine,
    Category,
    DiscountReason,
    EndProrationMode,
    Period,
    Proration,
    RatedLine,
    rate,
    rate_all,
)

D = Decimal
JAN = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


def day(n: int, month: int = 1) -> datetime:
    """Midnight UTC starting day `n` of `month` 2026."""
    return datetime(2026, month, n, tzinfo=UTC)


def tiers(*spec: tuple) -> tuple[Tier, ...]:
    """(up_to, unit, flat) per tier; None where absent."""
    return tuple(
        Tier(
            up_to=None if up is None else D(up),
            unit=None if unit is None else D(unit),
            flat=None if flat is None else D(flat),
        )
        for up, unit, flat in (s + (None,) * (3 - len(s)) for s in spec)
    )


def unit(amount: str) -> Price:
    return Price(PriceType.UNIT, amount=D(amount))


def flat(amount: str) -> Price:
    return Price(PriceType.FLAT, amount=D(amount))


def graduated(*spec: tuple) -> Price:
    return Price(PriceType.GRADUATED, tiers=tiers(*spec))


def volume(*spec: tuple) -> Price:
    return Price(PriceType.VOLUME, tiers=tiers(*spec))


def line(price: Price, q: str | int = 0, **kw) -> BillableLine:
    kw.setdefault("period", JAN)
    kw.setdefault("currency", "USD")
    for k in ("pre_line_quantity", "credits"):
        if k in kw:
            kw[k] = D(kw[k])
    return BillableLine(name="api", price=price, quantity=D(q), **kw)


def rows(r: RatedLine) -> list[tuple[str, Decimal, Decimal]]:
    return [(d.key, d.quantity, d.amount) for d in r.detailed]


def total(r: RatedLine) -> Decimal:
    return r.totals.total


# Tiers of product.md §7.4 ex. 2 and 3: [0-1000 @ 0.3], [1001-5000 @ 0.2], [5001- @ 0.1].
EX2 = (("1000", "0.3"), ("5000", "0.2"), (None, "0.1"))


# -- 1. price types on one line ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "quantity", "expected_rows", "expected_total"),
    [
        # §7.4 ex. 1: 10,000 tokens x $0.01 = $100
        (unit("0.01"), 10_000, [("usage", 10_000, "100.00")], "100.00"),
        # zero usage on a unit price: no detailed line, $0
        (unit("0.01"), 0, [], "0"),
        # §7.4 ex. 2: 1000 x 0.3 + 4000 x 0.2 + 1000 x 0.1 = 300 + 800 + 100 = 1200
        (
            graduated(*EX2),
            6000,
            [
                ("tier-1-usage", 1000, "300.0"),
                ("tier-2-usage", 4000, "800.0"),
                ("tier-3-usage", 1000, "100.0"),
            ],
            "1200",
        ),
        # up_to is inclusive: unit 1000 is still tier 1 -> 1000 x 0.3 = 300
        (graduated(*EX2), 1000, [("tier-1-usage", 1000, "300")], "300"),
        # unit 1001 is the first of tier 2 -> 300 + 1 x 0.2 = 300.20
        (graduated(*EX2), 1001, [("tier-1-usage", 1000, "300"), ("tier-2-usage", 1, "0.20")], "300.20"),
        # 5000: tiers 1 and 2 full -> 300 + 800 = 1100, tier 3 not entered
        (graduated(*EX2), 5000, [("tier-1-usage", 1000, "300"), ("tier-2-usage", 4000, "800")], "1100"),
        # 5001: + 1 x 0.1 = 1100.10
        (
            graduated(*EX2),
            5001,
            [("tier-1-usage", 1000, "300"), ("tier-2-usage", 4000, "800"), ("tier-3-usage", 1, "0.10")],
            "1100.10",
        ),
        # graduated at zero usage: a 0-unit tier-1 line is not shown; $0
        (graduated(*EX2), 0, [], "0"),
        # §7.4 ex. 3: 6000 is in tier 3, every unit at 0.1 -> 600
        (volume(*EX2), 6000, [("volume-usage", 6000, "600.0")], "600"),
        # volume edges: 1000 -> tier 1, 1000 x 0.3 = 300; 1001 -> tier 2, 1001 x 0.2 = 200.20
        (volume(*EX2), 1000, [("volume-usage", 1000, "300")], "300"),
        (volume(*EX2), 1001, [("volume-usage", 1001, "200.20")], "200.20"),
        # 5000 -> tier 2: 5000 x 0.2 = 1000; 5001 -> tier 3: 5001 x 0.1 = 500.10
        (volume(*EX2), 5000, [("volume-usage", 5000, "1000")], "1000"),
        (volume(*EX2), 5001, [("volume-usage", 5001, "500.10")], "500.10"),
        # §7.4 ex. 4: [0-1000: unit 0, flat 500], [1001-: 0.1]; 2000 -> 500 + 1000 x 0.1 = 600
        (
            graduated(("1000", "0", "500"), (None, "0.1")),
            2000,
            [("tier-1-usage", 1000, "0"), ("tier-1-flat", 1, "500"), ("tier-2-usage", 1000, "100")],
            "600",
        ),
        # ... and 0 units -> $500: the first tier's flat price is always billed
        (graduated(("1000", "0", "500"), (None, "0.1")), 0, [("tier-1-flat", 1, "500")], "500"),
        # §7.4 ex. 5 (the $0-at-zero workaround): [0-1: 500], [2-1000: 0], [1001-: 0.1]
        # 2000 -> 1 x 500 + 999 x 0 + 1000 x 0.1 = 600; 0 -> 0
        (
            graduated(("1", "500"), ("1000", "0"), (None, "0.1")),
            2000,
            [("tier-1-usage", 1, "500"), ("tier-2-usage", 999, "0"), ("tier-3-usage", 1000, "100")],
            "600",
        ),
        (graduated(("1", "500"), ("1000", "0"), (None, "0.1")), 0, [], "0"),
        # a later tier's flat price is billed once usage exceeds its lower bound:
        # [0-100 @ 1], [101- @ 0.5 + flat 20]: 100 -> 100 (tier 2 not entered)
        (graduated(("100", "1"), (None, "0.5", "20")), 100, [("tier-1-usage", 100, "100")], "100"),
        # 100.5 -> 100 + 0.5 x 0.5 = 0.25 + flat 20 = 120.25
        (
            graduated(("100", "1"), (None, "0.5", "20")),
            "100.5",
            [("tier-1-usage", 100, "100"), ("tier-2-usage", "0.5", "0.25"), ("tier-2-flat", 1, "20")],
            "120.25",
        ),
        # volume with flat prices: zero usage is in tier 1 and pays its flat price (10);
        # 100 -> tier 1: 10 + 100 x 1 = 110; 101 -> tier 2: 20 + 101 x 0.5 = 70.50
        (volume(("100", "1", "10"), (None, "0.5", "20")), 0, [("volume-flat", 1, "10")], "10"),
        (
            volume(("100", "1", "10"), (None, "0.5", "20")),
            100,
            [("volume-flat", 1, "10"), ("volume-usage", 100, "100")],
            "110",
        ),
        (
            volume(("100", "1", "10"), (None, "0.5", "20")),
            101,
            [("volume-flat", 1, "20"), ("volume-usage", 101, "50.50")],
            "70.50",
        ),
        # flat fee (in arrears, one line for the period): 49.99; usage is ignored
        (flat("49.99"), 123, [("flat", 1, "49.99")], "49.99"),
        # flat amounts are rounded to the currency: 10.005 -> 10.01 (half away from zero)
        (flat("10.005"), 0, [("flat", 1, "10.01")], "10.01"),
        # free: nothing at all
        (Price(PriceType.FREE), 500, [], "0"),
    ],
)
def test_price_types(price, quantity, expected_rows, expected_total):
    r = rate(line(price, quantity))
    assert rows(r) == [(k, D(q), D(a)) for k, q, a in expected_rows]
    assert total(r) == D(expected_total)
    assert r.totals.amount == D(expected_total) and r.totals.discounts_total == 0


def test_unit_price_finer_than_the_currency_rounds_half_away_from_zero():
    # 3 x $0.0015 = 0.0045 -> 0.00; 5 x 0.0015 = 0.0075 -> 0.01; 1 x 0.005 = 0.005 -> 0.01
    assert total(rate(line(unit("0.0015"), 3))) == D("0.00")
    assert total(rate(line(unit("0.0015"), 5))) == D("0.01")
    assert total(rate(line(unit("0.005"), 1))) == D("0.01")


def test_detailed_lines_name_the_line_and_carry_the_period():
    r = rate(line(graduated(*EX2), 1001))
    assert [d.name for d in r.detailed] == ["api: usage price for tier 1", "api: usage price for tier 2"]
    assert [d.unit_price for d in r.detailed] == [D("0.3"), D("0.2")]
    assert all(d.period == JAN and d.category is Category.REGULAR for d in r.detailed)


# -- 2. unit config ------------------------------------------------------------------------------
PACKAGE_20 = UnitConfig(UnitOperation.DIVIDE, D(20), Rounding.CEILING)


@pytest.mark.parametrize(
    ("config", "price", "metered", "billed_quantity", "expected_total"),
    [
        # §7.4 ex. 6 / §8: package of 20 at $10 = unit $10 with divide 20, ceiling:
        # 0 -> 0 packages $0; 20 -> 1 -> $10; 20.1 -> 1.005 -> 2 -> $20; 98 -> 4.9 -> 5 -> $50
        (PACKAGE_20, unit("10"), "0", "0", "0"),
        (PACKAGE_20, unit("10"), "20", "1", "10"),
        (PACKAGE_20, unit("10"), "20.1", "2", "20"),
        (PACKAGE_20, unit("10"), "98", "5", "50"),
        # §7.4 ex. 7 (dynamic / markup): unit $1 with multiply by the rate, on a $100 cost meter:
        # 0.5 -> $50; 1 -> $100; 1.5 -> $150; 2 -> $200
        (UnitConfig(UnitOperation.MULTIPLY, D("0.5")), unit("1"), "100", "50", "50"),
        (UnitConfig(UnitOperation.MULTIPLY, D("1")), unit("1"), "100", "100", "100"),
        (UnitConfig(UnitOperation.MULTIPLY, D("1.5")), unit("1"), "100", "150", "150"),
        (UnitConfig(UnitOperation.MULTIPLY, D("2")), unit("1"), "100", "200", "200"),
        # §8 bytes -> GB: divide 1e9, half_up, 2 decimals, $0.10 / GB:
        # 1,500,000,000 B -> 1.50 GB -> $0.15; 1,234,567,890 B -> 1.23 GB -> 0.123 -> $0.12
        (
            UnitConfig(UnitOperation.DIVIDE, D("1e9"), Rounding.HALF_UP, 2),
            unit("0.10"),
            "1500000000",
            "1.5",
            "0.15",
        ),
        (
            UnitConfig(UnitOperation.DIVIDE, D("1e9"), Rounding.HALF_UP, 2),
            unit("0.10"),
            "1234567890",
            "1.23",
            "0.12",
        ),
        # floor: 1999 / 1000 -> 1.999 -> 1 unit at $3 = $3
        (UnitConfig(UnitOperation.DIVIDE, D(1000), Rounding.FLOOR), unit("3"), "1999", "1", "3"),
        # tier bounds are in converted units: 15,000 raw / 1000 = 15 units over [0-10 @ 1], [11- @ 0.5]
        # -> 10 x 1 + 5 x 0.5 = 12.50
        (
            UnitConfig(UnitOperation.DIVIDE, D(1000)),
            graduated(("10", "1"), (None, "0.5")),
            "15000",
            "15",
            "12.50",
        ),
    ],
)
def test_unit_config_converts_before_pricing(config, price, metered, billed_quantity, expected_total):
    r = rate(line(price, metered, unit_config=config))
    assert r.quantity == D(billed_quantity)
    assert r.metered_quantity == D(metered)
    assert total(r) == D(expected_total)


def test_usage_discount_counts_converted_units():
    # divide 20 ceiling, 2 free packages, $10 each: 98 -> 5 packages - 2 free = 3 -> $30
    r = rate(line(unit("10"), 98, unit_config=PACKAGE_20, discounts=Discounts(usage=D(2))))
    assert r.quantity == D(3)
    assert r.usage_discount is not None and r.usage_discount.quantity == D(2)
    assert total(r) == D(30)


# -- 3. discounts and commitments on one line ----------------------------------------------------
def test_usage_discount_then_percentage_discount():
    # §7.4 ex. 8: usage 1000, 900 free, $0.1 -> (1000 - 900) x 0.1 = $10; plus 10 % -> $9
    r = rate(line(unit("0.1"), 1000, discounts=Discounts(usage=D(900))))
    assert (r.quantity, total(r)) == (D(100), D(10))
    assert r.usage_discount.quantity == D(900) and r.usage_discount.reason is DiscountReason.RATECARD_USAGE
    r = rate(line(unit("0.1"), 1000, discounts=Discounts(percentage=D(10), usage=D(900))))
    assert r.totals.amount == D(10) and r.totals.discounts_total == D(1) and total(r) == D(9)
    (discount,) = r.detailed[0].discounts
    assert (discount.reason, discount.amount, discount.percentage) == (
        DiscountReason.RATECARD_PERCENTAGE,
        1,
        10,
    )


def test_usage_discount_larger_than_usage_bills_nothing():
    # 500 free, 300 used -> all 300 free, nothing billed
    r = rate(line(unit("1"), 300, discounts=Discounts(usage=D(500))))
    assert rows(r) == [] and total(r) == 0
    assert r.usage_discount.quantity == D(300)


def test_percentage_discount_rounds_half_away_from_zero():
    # 1 x $0.05 = 0.05; 10 % = 0.005 -> 0.01; total 0.04
    r = rate(line(unit("0.05"), 1, discounts=Discounts(percentage=D(10))))
    assert (r.totals.amount, r.totals.discounts_total, total(r)) == (D("0.05"), D("0.01"), D("0.04"))


def test_full_percentage_discount_shows_the_value_then_the_discount():
    # §7.4: a 100 % discount shows the original value ($99) then the discount
    r = rate(line(flat("99"), discounts=Discounts(percentage=D(100))))
    assert (r.totals.amount, r.totals.discounts_total, total(r)) == (D(99), D(99), D(0))


@pytest.mark.parametrize(
    ("price", "quantity", "discounts", "commitments", "amount", "discounts_total", "charges", "expected"),
    [
        # §9: max $10, usage worth $100 -> discount 90, pays $10
        (unit("1"), 100, None, Commitments(maximum=D(10)), "100", "90", "0", "10"),
        # under the maximum: nothing happens
        (unit("1"), 9, None, Commitments(maximum=D(10)), "9", "0", "0", "9"),
        # §9: min $10, usage $2 -> a commitment line of 8, pays $10
        (unit("1"), 2, None, Commitments(minimum=D(10)), "2", "0", "8", "10"),
        # the minimum is charged at zero usage too: commitment 10
        (unit("1"), 0, None, Commitments(minimum=D(10)), "0", "0", "10", "10"),
        # above the minimum: no commitment line
        (unit("1"), 12, None, Commitments(minimum=D(10)), "12", "0", "0", "12"),
        # percentage before maximum: 100 - 10 % = 90 net, max 50 -> a further 40 off; pays 50
        (unit("1"), 100, Discounts(percentage=D(10)), Commitments(maximum=D(50)), "100", "50", "0", "50"),
        # percentage before minimum: 10 - 50 % = 5 net, min 8 -> commitment 3; pays 8
        (unit("1"), 10, Discounts(percentage=D(50)), Commitments(minimum=D(8)), "10", "5", "3", "8"),
        # minimum in sub-cent: min 10.005 -> short by 10.005 - 2 = 8.005 -> 8.01 (half away from zero)
        (unit("1"), 2, None, Commitments(minimum=D("10.005")), "2", "0", "8.01", "10.01"),
    ],
)
def test_commitments(price, quantity, discounts, commitments, amount, discounts_total, charges, expected):
    r = rate(line(price, quantity, discounts=discounts, commitments=commitments))
    assert r.totals.amount == D(amount)
    assert r.totals.discounts_total == D(discounts_total)
    assert r.totals.charges_total == D(charges)
    assert total(r) == D(expected)


def test_maximum_spend_discounts_detailed_lines_in_order():
    # §7.4 ex. 2 tiers, 6000 units, max 500: tier 1 300 (billed 300), tier 2 800 -> 600 off
    # (billed 500), tier 3 100 -> all 100 off. Discounts 700, total 500.
    r = rate(line(graduated(*EX2), 6000, commitments=Commitments(maximum=D(500))))
    off = [[(x.reason, x.amount) for x in d.discounts] for d in r.detailed]
    assert off == [[], [(DiscountReason.MAXIMUM_SPEND, D(600))], [(DiscountReason.MAXIMUM_SPEND, D(100))]]
    assert (r.totals.discounts_total, total(r)) == (D(700), D(500))


def test_minimum_spend_line_is_a_commitment_over_the_whole_period():
    r = rate(line(unit("1"), 2, commitments=Commitments(minimum=D(10))))
    commitment = r.detailed[-1]
    assert (commitment.key, commitment.category, commitment.amount) == (
        "minimum-spend",
        Category.COMMITMENT,
        8,
    )
    assert commitment.name == "api: minimum spend" and commitment.period == JAN
    assert commitment.totals.charges_total == 8 and commitment.totals.amount == 0


def test_credits_apply_last_in_line_order():
    # 10 x $1 = 10, min 15 -> commitment 5. Credits 12: usage line takes 10, commitment 2.
    # Total 10 + 5 - 12 = 3.
    r = rate(line(unit("1"), 10, commitments=Commitments(minimum=D(15)), credits="12"))
    assert [d.credits for d in r.detailed] == [D(10), D(2)]
    assert (r.totals.credits_total, r.totals.charges_total, total(r)) == (D(12), D(5), D(3))


def test_credits_apply_after_discounts():
    # 100 - 10 % = 90 net; credits 90 cover it exactly -> 0
    r = rate(line(unit("1"), 100, discounts=Discounts(percentage=D(10)), credits="90"))
    assert (r.totals.discounts_total, r.totals.credits_total, total(r)) == (D(10), D(90), D(0))


def test_credits_worth_more_than_the_line_are_refused():
    # 10 - 10 % = 9 net; 9.01 of credits is 0.01 too much
    with pytest.raises(InvalidInput) as err:
        rate(line(unit("1"), 10, discounts=Discounts(percentage=D(10)), credits="9.01"))
    assert err.value.fields[0].field == "credits"


# -- 4. currencies -------------------------------------------------------------------------------
def test_jpy_has_no_decimals():
    # 3 x ¥0.5 = 1.5 -> ¥2 (half away from zero)
    r = rate(line(unit("0.5"), 3, currency="JPY"))
    assert (r.precision, total(r)) == (0, D(2))
    # graduated [0-10 @ 1.25], [11- @ 0.75], 13 units: 12.5 -> 13, 3 x 0.75 = 2.25 -> 2; total 15
    r = rate(line(graduated(("10", "1.25"), (None, "0.75")), 13, currency="JPY"))
    assert rows(r) == [("tier-1-usage", 10, 13), ("tier-2-usage", 3, 2)] and total(r) == 15
    # a minimum of ¥999.5 -> short 999.5 - 15 = 984.5 -> ¥985
    r = rate(line(unit("1"), 15, currency="JPY", commitments=Commitments(minimum=D("999.5"))))
    assert r.totals.charges_total == 985 and total(r) == 1000


def test_kwd_has_three_decimals():
    # 3 x 0.0125 KWD = 0.0375 -> 0.038; 10 % = 0.0038 -> 0.004; total 0.034
    r = rate(line(unit("0.0125"), 3, currency="KWD", discounts=Discounts(percentage=D(10))))
    assert r.precision == 3
    assert (r.totals.amount, r.totals.discounts_total, total(r)) == (D("0.038"), D("0.004"), D("0.034"))


@pytest.mark.parametrize("code", ["ABC", "usd", "XAU", "XXX"])
def test_unknown_or_non_invoiceable_currencies_are_refused(code):
    # ABC is no ISO 4217 code, lower case isn't either; XAU (gold) and XXX have no minor unit
    with pytest.raises(InvalidInput) as err:
        rate(line(unit("1"), 1, currency=code))
    assert err.value.fields[0].field == "currency"


# -- 5. progressive billing: a period split into lines --------------------------------------------
def split(price: Price, cuts: list[tuple[int, str]], **kw) -> list[RatedLine]:
    """Rate January in pieces: `cuts` = (day the line ends, quantity metered in it); the last must
    end on Feb 1 (day 32). Each line knows what was metered before it."""
    out, start, pre = [], day(1), D(0)
    for end_day, q in cuts:
        end = day(1) + timedelta(days=end_day - 1)
        out.append(
            rate(line(price, q, period=Period(start, end), split_period=JAN, pre_line_quantity=pre, **kw))
        )
        start, pre = end, pre + D(q)
    assert start == JAN.end
    return out


def test_graduated_split_mid_period_continues_where_the_last_line_stopped():
    # EX2 tiers. Jan 1-15: 800 -> tier 1, 800 x 0.3 = 240.
    # Jan 15-Feb 1: 5200 more (6000 in all) -> tier 1 200 x 0.3 = 60, tier 2 4000 x 0.2 = 800,
    # tier 3 1000 x 0.1 = 100 -> 960. 240 + 960 = 1200, the unsplit total (§7.4 ex. 2).
    first, last = split(graduated(*EX2), [(15, "800"), (32, "5200")])
    assert rows(first) == [("tier-1-usage", 800, 240)]
    assert rows(last) == [("tier-1-usage", 200, 60), ("tier-2-usage", 4000, 800), ("tier-3-usage", 1000, 100)]
    assert (last.pre_line_quantity, last.quantity) == (800, 5200)
    assert total(first) + total(last) == 1200


def test_split_exactly_at_a_tier_edge():
    # 1000 then 1 more: tier 1 full on the first line (300), the second is tier 2's first unit (0.2)
    first, last = split(graduated(*EX2), [(10, "1000"), (32, "1")])
    assert rows(first) == [("tier-1-usage", 1000, 300)]
    assert rows(last) == [("tier-2-usage", 1, D("0.2"))]


def test_tier_flat_price_is_billed_once_on_the_first_line():
    # §7.4 ex. 4 tiers. Jan 1-10: no usage -> the tier-1 flat $500 (the first line of the period).
    # Jan 10-Feb 1: 2000 -> tier 1 1000 x 0 = 0, tier 2 1000 x 0.1 = 100; no second flat. 600 in all.
    first, last = split(graduated(("1000", "0", "500"), (None, "0.1")), [(10, "0"), (32, "2000")])
    assert rows(first) == [("tier-1-flat", 1, 500)]
    assert rows(last) == [("tier-1-usage", 1000, 0), ("tier-2-usage", 1000, 100)]


def test_volume_bills_the_whole_period_on_its_last_line():
    # A middle line bills nothing; the last prices all 6000 units in tier 3: 600 (§2.7).
    first, last = split(volume(*EX2), [(15, "800"), (32, "5200")])
    assert rows(first) == [] and total(first) == 0
    assert rows(last) == [("volume-usage", 6000, 600)]
    assert last.detailed[0].period == JAN  # it prices the whole period


def test_package_split_counts_each_package_once():
    # divide 20, ceiling, $10: Jan 1-10: 10 -> 1 package $10; Jan 10-20: 10 more (20) -> still 1: $0;
    # Jan 20-Feb 1: 1 more (21) -> 2 packages: +$10. $20, as unsplit (21 -> 2 packages).
    lines = split(unit("10"), [(10, "10"), (20, "10"), (32, "1")], unit_config=PACKAGE_20)
    assert [total(r) for r in lines] == [10, 0, 10]
    assert [r.quantity for r in lines] == [1, 0, 1]


def test_usage_discount_is_consumed_across_lines():
    # product.md §9: 500 free, usage billed in 300 / 250 / 100 at $1:
    # discounts 300 / 200 / 0, billed 0 / 50 / 100.
    lines = split(unit("1"), [(10, "300"), (20, "250"), (32, "100")], discounts=Discounts(usage=D(500)))
    assert [r.usage_discount.quantity if r.usage_discount else 0 for r in lines] == [300, 200, 0]
    assert [r.usage_discount.pre_line_period_quantity for r in lines[:2]] == [0, 300]
    assert [total(r) for r in lines] == [0, 50, 100]


def test_split_lines_do_not_drift_below_the_currency_unit():
    # $0.004 a unit, one unit in each of three lines. Unsplit: 3 x 0.004 = 0.012 -> 0.01.
    # Lines bill the difference of the rounded cumulative amounts: round(0.004) - 0 = 0.00,
    # round(0.008) - round(0.004) = 0.01 - 0.00 = 0.01, round(0.012) - round(0.008) = 0.01 - 0.01 = 0.
    # (Rounding each line alone would give 0.00 three times, a cent short.)
    lines = split(unit("0.004"), [(10, "1"), (20, "1"), (32, "1")])
    assert [total(r) for r in lines] == [D("0.00"), D("0.01"), D("0.00")]
    assert total(rate(line(unit("0.004"), 3))) == D("0.01")


def test_percentage_discount_split_does_not_drift():
    # $0.05 a unit, 10 % off, one unit per line. Cumulative amounts 0.05 / 0.10 / 0.15, their
    # discounts round(0.005) = 0.01 / round(0.010) = 0.01 / round(0.015) = 0.02, so the lines take
    # 0.01 / 0.00 / 0.01 = 0.02: the unsplit 0.15 x 10 % = 0.015 -> 0.02.
    lines = split(unit("0.05"), [(10, "1"), (20, "1"), (32, "1")], discounts=Discounts(percentage=D(10)))
    assert [r.totals.discounts_total for r in lines] == [D("0.01"), D("0.00"), D("0.01")]
    assert [total(r) for r in lines] == [D("0.04"), D("0.05"), D("0.04")]


def test_maximum_spend_across_split_lines():
    # $1 a unit, max 100. Line 1: 80 -> 80 billed. Line 2: 50 -> 80 + 50 = 130, 30 off -> 20.
    # Line 3: 10 -> the maximum is reached: all 10 off -> 0. 100 in all.
    lines = split(unit("1"), [(10, "80"), (20, "50"), (32, "10")], commitments=Commitments(maximum=D(100)))
    assert [r.totals.discounts_total for r in lines] == [0, 30, 10]
    assert [total(r) for r in lines] == [80, 20, 0]


def test_minimum_spend_only_on_the_last_line():
    # $1 a unit, min 100. Line 1: 30 -> 30, no commitment yet. Line 2 (last): 20 -> 20, and the
    # period billed 50 < 100 -> a commitment of 50 for the whole period.
    first, last = split(unit("1"), [(15, "30"), (32, "20")], commitments=Commitments(minimum=D(100)))
    assert rows(first) == [("usage", 30, 30)]
    assert rows(last) == [("usage", 20, 20), ("minimum-spend", 1, 50)]
    assert last.detailed[-1].period == JAN
    assert total(first) + total(last) == 100


def test_flat_fee_split_bills_on_its_first_or_last_line():
    # in advance: the first line bills the $30; in arrears: the last one does. Others bill nothing.
    advance = split(flat("30"), [(15, "0"), (32, "0")], payment_term=PaymentTerm.IN_ADVANCE)
    arrears = split(flat("30"), [(15, "0"), (32, "0")], payment_term=PaymentTerm.IN_ARREARS)
    assert [total(r) for r in advance] == [30, 0]
    assert [total(r) for r in arrears] == [0, 30]
    assert advance[0].detailed[0].payment_term is PaymentTerm.IN_ADVANCE
    assert advance[0].detailed[0].period == JAN  # the fee pays for the whole period


def test_late_usage_continues_the_tiers_without_a_second_minimum():
    # EX2 tiers, min 1500. The period was billed: 6000 units = 1200 + commitment 300.
    # 100 units arrive late: tier 3 continues, 100 x 0.1 = 10; no commitment again. 1510 in all.
    card = {"commitments": Commitments(minimum=D(1500))}
    (whole,) = split(graduated(*EX2), [(32, "6000")], **card)
    assert total(whole) == 1510 - 10
    late = rate(line(graduated(*EX2), 100, pre_line_quantity="6000", late=True, **card))
    assert rows(late) == [("tier-3-usage", 100, 10)] and total(late) == 10
    # a late flat fee bills nothing: it was billed with the period
    assert rows(rate(line(flat("30"), late=True))) == []


def test_late_usage_respects_the_maximum():
    # $1 a unit, max 100: 120 units were billed as 100 (20 off). 5 more arrive late: all 5 off.
    late = rate(
        line(unit("1"), 5, pre_line_quantity="120", late=True, commitments=Commitments(maximum=D(100)))
    )
    assert (late.totals.amount, late.totals.discounts_total, total(late)) == (D(5), D(5), D(0))


# -- 6. flat-fee proration -----------------------------------------------------------------------
NOV = Period(day(1, 11), day(1, 12))  # 30 days


@pytest.mark.parametrize(
    ("amount", "service", "proration", "expected"),
    [
        # product.md §11.3: $30 for November (30 days), subscribed on the 16th: 15/30 x 30 = $15
        ("30", Period(day(16, 11), day(1, 12)), Proration(NOV), "15.00"),
        # $100 for January (31 days), Jan 1-11 (10 days): 100 x 10/31 = 32.258... -> 32.26
        ("100", Period(day(1), day(11)), Proration(JAN), "32.26"),
        # exact duration, not days: 12 hours of November at $30: 30 x 12/720 = 0.50
        ("30", Period(day(16, 11), day(16, 11) + timedelta(hours=12)), Proration(NOV), "0.50"),
        # the subscription ends Jan 11 and the profile bills the full period: $100
        (
            "100",
            Period(day(1), day(11)),
            Proration(JAN, subscription_end=day(11), end_mode=EndProrationMode.BILL_FULL_PERIOD),
            "100",
        ),
        # ... bill_actual_period prorates it: 32.26
        (
            "100",
            Period(day(1), day(11)),
            Proration(JAN, subscription_end=day(11), end_mode=EndProrationMode.BILL_ACTUAL_PERIOD),
            "32.26",
        ),
        # a late start with an end far ahead is prorated whatever the end mode: Jan 16-Feb 1 is
        # 16 of 31 days: 100 x 16/31 = 51.6129 -> 51.61
        (
            "100",
            Period(day(16), day(1, 2)),
            Proration(JAN, subscription_end=day(1, 3), end_mode=EndProrationMode.BILL_FULL_PERIOD),
            "51.61",
        ),
        # the plan has proration off: $100
        ("100", Period(day(16), day(1, 2)), Proration(JAN, enabled=False), "100"),
        # never more than the amount: a service period longer than the full one bills $100
        ("100", Period(day(1), day(1, 3)), Proration(JAN), "100"),
        # no proration given: the amount
        ("100", Period(day(16), day(1, 2)), None, "100"),
        # JPY: ¥1000 for 10 of 31 days = 322.58 -> ¥323
        ("1000", Period(day(1), day(11)), Proration(JAN), "323"),
    ],
)
def test_flat_fee_proration(amount, service, proration, expected):
    currency = "JPY" if expected == "323" else "USD"
    r = rate(
        line(
            flat(amount),
            period=service,
            proration=proration,
            currency=currency,
            payment_term=PaymentTerm.IN_ADVANCE,
        )
    )
    assert rows(r) == [("flat", 1, D(expected))]
    assert r.detailed[0].unit_price == D(expected)


def test_proration_to_zero_skips_the_line():
    # $0.01 for one hour of January: 0.01 x 1/744 -> 0.00: no detailed line at all
    r = rate(line(flat("0.01"), period=Period(day(1), day(1) + timedelta(hours=1)), proration=Proration(JAN)))
    assert rows(r) == [] and total(r) == 0


def test_proration_then_percentage_discount():
    # $30 for 15 of 30 days = 15.00, then 10 % off = 1.50 -> 13.50
    r = rate(
        line(
            flat("30"),
            period=Period(day(16, 11), day(1, 12)),
            proration=Proration(NOV),
            discounts=Discounts(percentage=D(10)),
        )
    )
    assert (r.totals.amount, r.totals.discounts_total, total(r)) == (D(15), D("1.5"), D("13.5"))


# -- 7. an invoice of several lines; a rate card as input ----------------------------------------
def test_invoice_totals_are_sums_of_the_lines():
    card = RateCard(
        key="tokens", name="Tokens", price=graduated(*EX2), commitments=Commitments(minimum=D(1500))
    )
    lines = [
        BillableLine.from_rate_card(card, currency="USD", period=JAN, quantity=D(6000)),
        line(flat("99"), payment_term=PaymentTerm.IN_ADVANCE),
        line(unit("0.015"), 3),
    ]
    rated, totals = rate_all(lines)
    # tokens: 1200 + commitment 300 (min 1500) = 1500; flat 99; 3 x 0.015 = 0.045 -> 0.05
    assert [total(r) for r in rated] == [D(1500), D(99), D("0.05")]
    assert (totals.amount, totals.charges_total, totals.total) == (D("1299.05"), D(300), D("1599.05"))
    assert rated[0].detailed[0].name == "Tokens: usage price for tier 1"


# -- 8. refused input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: line(unit("1"), -1), "quantity"),
        (
            lambda: line(
                unit("1"), 1, pre_line_quantity="-1", split_period=JAN, period=Period(day(5), day(1, 2))
            ),
            "pre_line_quantity",
        ),
        # the first line of a period has nothing before it
        (lambda: line(unit("1"), 1, pre_line_quantity="5"), "pre_line_quantity"),
        (lambda: line(unit("1"), 1, period=Period(day(1), day(1, 3)), split_period=JAN), "period"),
        (lambda: line(unit("1"), 1, period=Period(day(5), day(1))), "period"),
        (lambda: line(unit("1"), 1, period=Period(datetime(2026, 1, 1), datetime(2026, 2, 1))), "period"),
        (lambda: line(Price(PriceType.UNIT), 1), "price.amount"),
        (lambda: line(unit("-1"), 1), "price.amount"),
        # a quantity above a bounded last tier has no price
        (lambda: line(graduated(("10", "1")), 11), "price.tiers"),
        (lambda: line(volume(("10", "1")), 11), "price.tiers"),
        (lambda: line(graduated(("10", "1"), ("5", "1"), (None, "1")), 1), "price.tiers[1].up_to_amount"),
        (lambda: line(graduated((None, "1"), ("5", "1")), 1), "price.tiers[0].up_to_amount"),
        (lambda: line(graduated(("10",), (None, "1")), 1), "price.tiers[0]"),
        (lambda: line(unit("1"), 1, discounts=Discounts(percentage=D(101))), "discounts.percentage"),
        (lambda: line(flat("1"), discounts=Discounts(usage=D(1))), "discounts.usage"),
        (lambda: line(flat("1"), commitments=Commitments(minimum=D(1))), "commitments"),
        (lambda: line(flat("1"), unit_config=PACKAGE_20), "unit_config"),
        (lambda: line(unit("1"), 1, commitments=Commitments(D(10), D(5))), "commitments.minimum_amount"),
        (
            lambda: line(unit("1"), 1, unit_config=UnitConfig(UnitOperation.DIVIDE, D(0))),
            "unit_config.conversion_factor",
        ),
        (lambda: line(unit("1"), 1, credits="-1"), "credits"),
        (lambda: line(unit("1"), 1, discounts=Discounts(percentage=D("NaN"))), "discounts.percentage"),
        (lambda: line(unit("1"), D("Infinity")), "quantity"),
        (lambda: line(unit("1"), 1, payment_term=PaymentTerm.IN_ADVANCE), "payment_term"),
        # a volume price has no late line (more usage can make the period cheaper)
        (lambda: line(volume(*EX2), 1, pre_line_quantity="10", late=True), "late"),
    ],
)
def test_bad_input_is_refused_naming_the_field(make, field):
    with pytest.raises(InvalidInput) as err:
        rate(make())
    assert err.value.fields[0].field == field
