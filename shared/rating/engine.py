"""The rating engine: one billable line in, its detailed lines and totals out. Pure and exact.

Pipeline (engine-rules §2.7, OpenMeter's `billing/rating/service`; product.md §8, §9):

    unit config → usage discount → price → percentage discount → maximum spend
                → minimum spend (last line of the period only) → credits

Prices (the catalog's `Price`):
- free: nothing is billed (it "generates no invoices").
- flat: the amount, prorated by exact duration (see `proration`), on the period's first line when
  paid `in_advance` and on its last line `in_arrears`; a line in between bills nothing. Only the
  percentage discount and credits apply (the catalog refuses the rest on flat prices).
- unit, graduated, volume: see `prices`, after the unit config and usage discount of `quantities`.

Rounding. Every detailed line's amount is rounded half away from zero to the currency's ISO 4217
precision (`money`), and every total is the sum of the rounded detailed lines.

Progressive billing. A period may be billed in several lines (mid-period invoices); each line knows
the usage metered in the period before it. The engine prices the period's cumulative usage at the
line's start and at its end and bills the difference, component by component (a tier's usage, a
tier's flat fee): `amount = round(price(pre + q)) - round(price(pre))`. So graduated tiers continue
where the previous line stopped, a tier's flat fee is billed once (in the line that enters it),
and the lines of a period always add up to exactly what the unsplit period bills — also with unit
prices finer than the currency, where rounding each piece on its own would drift by a cent per
split. A split line's amount can therefore differ from `quantity * unit_price` by less than one
unit of the currency; the unsplit line's never does. Percentage discounts are split the same way.
Volume prices bill only on the period's last line, for the whole period's usage (a middle line
bills nothing; OpenMeter never splits a volume line).

The maximum and minimum spend need what the period's earlier lines billed. Because their amounts
telescope, that is the cumulative net amount at the line's start, capped by the maximum — derived
from `pre_line_quantity`, with no stored state. Net of discounts: OpenMeter sums the earlier lines'
amounts before discounts, so with a 10 % discount and a $150 maximum two $100 lines bill 90 + 50
there and 90 + 60 here, which is what the unsplit $200 bills (180, capped at 150).

Late usage (metered in a period whose last line was already invoiced) is a `late` line: everything
billed is its `pre_line_quantity`, and it bills the difference like any later line (tiers continue,
the maximum spend still caps the period) but never the flat fee or the minimum spend again. The
minimum already charged is not reduced by late usage: with a $10 minimum, $2 billed and $3 arriving
late, the period bills 2 + 8 + 3 = $13 (issued invoices are immutable). Volume prices have no late
line: more usage can make a period cheaper, which a positive line can't express.

Every input is checked; a bad one raises `InvalidInput` naming the field, and nothing is returned.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, localcontext

from shared.catalog.models import PaymentTerm, Price, PriceType
from shared.core.errors import InvalidInput
from shared.rating import adjustments, prices
from shared.rating.adjustments import Draft
from shared.rating.models import ZERO, BillableLine, Category, DetailedLine, RatedLine, Totals, UsageDiscount
from shared.rating.money import CONTEXT, currency_precision, round_amount
from shared.rating.proration import prorated
from shared.rating.quantities import billable

Calculator = Callable[[Price, Decimal, int], list[prices.Component]]
_CALCULATORS: dict[PriceType, Calculator] = {
    PriceType.UNIT: prices.unit,
    PriceType.GRADUATED: prices.graduated,
    PriceType.VOLUME: prices.volume,
}


def rate(line: BillableLine) -> RatedLine:
    precision = currency_precision(line.currency)
    with localcontext(CONTEXT):
        _validate(line)
        if line.price.type is PriceType.FREE:
            return _finish(line, precision, [])
        if line.price.type is PriceType.FLAT:
            return _rate_flat(line, precision)
        return _rate_usage(line, precision)


def rate_all(lines: list[BillableLine]) -> tuple[list[RatedLine], Totals]:
    """Rate several lines (an invoice's); the totals are the sums of theirs."""
    rated = [rate(line) for line in lines]
    return rated, sum((r.totals for r in rated), Totals())


def _rate_flat(line: BillableLine, precision: int) -> RatedLine:
    assert line.price.amount is not None
    advance = line.payment_term is PaymentTerm.IN_ADVANCE
    billed_here = line.is_first_in_period if advance else line.is_last_in_period
    drafts: list[Draft] = []
    if billed_here:
        # A split flat line serves its whole split period: that is what proration compares.
        amount = prorated(line.price.amount, line.full_period, line.proration, precision)
        if amount:
            drafts.append(
                Draft(
                    "flat",
                    line.name,
                    Category.REGULAR,
                    Decimal(1),
                    amount,
                    ZERO,
                    amount,
                    line.full_period,  # what the fee pays for, on whichever line bills it
                    line.payment_term,
                )
            )
    if line.discounts is not None and line.discounts.percentage:
        adjustments.percentage_discount(drafts, line.discounts.percentage, precision)
    return _finish(line, precision, drafts)


def _rate_usage(line: BillableLine, precision: int) -> RatedLine:
    units = billable(line.pre_line_quantity, line.quantity, line.unit_config, line.discounts)
    calculate = _CALCULATORS[line.price.type]
    before: dict[str, prices.Component] = {}
    period = line.period
    if line.price.type is PriceType.VOLUME:
        period = line.full_period  # its lines price the whole period
        # Only the last line prices the period, all of it; nothing was billed before it.
        after = calculate(line.price, units.after, precision) if line.is_last_in_period else []
    else:
        after = calculate(line.price, units.after, precision)
        # Before the period's first line nothing is billed; before any other, what the cumulative
        # usage at its start prices.
        if not line.is_first_in_period:
            before = {c.key: c for c in calculate(line.price, units.before, precision)}

    drafts = []
    for c in after:
        b = before.get(c.key)
        quantity = c.quantity - (b.quantity if b else ZERO)
        if quantity or c.amount != (b.amount if b else ZERO):
            drafts.append(
                Draft(
                    c.key,
                    f"{line.name}: {c.label}",
                    Category.REGULAR,
                    quantity,
                    c.unit_price,
                    b.amount if b else ZERO,
                    c.amount,
                    period,
                    PaymentTerm.IN_ARREARS,
                )
            )

    percentage = line.discounts.percentage if line.discounts is not None else None
    if percentage:
        adjustments.percentage_discount(drafts, percentage, precision)

    commitments = line.commitments
    # What the period's earlier lines billed, net of discounts: their amounts telescope to the
    # cumulative net amount at this line's start, which the maximum spend then capped.
    billed_before = sum(
        (
            b.amount - (adjustments.percentage_of(b.amount, percentage, precision) if percentage else ZERO)
            for b in before.values()
        ),
        ZERO,
    )
    if commitments is not None and commitments.maximum is not None:
        billed_before = min(billed_before, round_amount(commitments.maximum, precision))
        adjustments.maximum_spend(drafts, commitments.maximum, billed_before, precision)
    if commitments is not None and commitments.minimum is not None and line.is_last_in_period:
        billed = billed_before + sum((d.net for d in drafts), ZERO)
        adjustments.minimum_spend(drafts, commitments.minimum, billed, line.name, line.full_period, precision)

    return _finish(line, precision, drafts, units.after - units.before, units.before, units.usage_discount)


def _finish(
    line: BillableLine,
    precision: int,
    drafts: list[Draft],
    quantity: Decimal = ZERO,
    pre_line_quantity: Decimal = ZERO,
    usage_discount: UsageDiscount | None = None,
) -> RatedLine:
    if line.credits:
        adjustments.apply_credits(drafts, line.credits, precision)
    detailed = tuple(d.freeze() for d in drafts)
    return RatedLine(
        currency=line.currency,
        precision=precision,
        detailed=detailed,
        quantity=quantity,
        pre_line_quantity=pre_line_quantity,
        metered_quantity=line.quantity,
        metered_pre_line_quantity=line.pre_line_quantity,
        usage_discount=usage_discount,
        totals=_sum(detailed),
    )


def _sum(detailed: tuple[DetailedLine, ...]) -> Totals:
    return sum((d.totals for d in detailed), Totals())


# -- validation --------------------------------------------------------------------------------------
def _bad(field: str, reason: str) -> InvalidInput:
    return InvalidInput.field(field, reason)


def _non_negative(value: Decimal | None, field: str) -> None:
    if value is not None and (not value.is_finite() or value < 0):
        raise _bad(field, "must be a finite number, zero or more")


def _validate(line: BillableLine) -> None:
    for name, period in (("period", line.period), ("split_period", line.split_period)):
        if period is None:
            continue
        if period.start.tzinfo is None or period.end.tzinfo is None:
            raise _bad(name, "must be timezone-aware")
        if period.end < period.start:
            raise _bad(name, "must not end before it starts")
    if line.split_period is not None and not line.split_period.contains(line.period):
        raise _bad("period", "must lie inside split_period")
    _non_negative(line.credits, "credits")

    price = line.price
    usage = price.usage_based
    if usage:
        _non_negative(line.quantity, "quantity")
        _non_negative(line.pre_line_quantity, "pre_line_quantity")
        if line.is_first_in_period and line.pre_line_quantity:
            raise _bad("pre_line_quantity", "must be 0 on the first line of a period")
        if line.payment_term is PaymentTerm.IN_ADVANCE:
            raise _bad("payment_term", "in_advance applies to flat prices only")
        if line.late and price.type is PriceType.VOLUME:
            # More usage can move the period to a cheaper tier: the difference may be negative, and
            # a maximum spend over signed lines is not what §2.7 defines. Re-rate the period instead.
            raise _bad("late", "a volume price re-prices its whole period: it has no late line")
    elif line.unit_config is not None:
        raise _bad("unit_config", f"does not apply to a {price.type} price")

    if price.type in (PriceType.FLAT, PriceType.UNIT):
        if price.amount is None:
            raise _bad("price.amount", "is required")
        _non_negative(price.amount, "price.amount")
    if price.type in (PriceType.GRADUATED, PriceType.VOLUME):
        _validate_tiers(price)

    discounts = line.discounts
    if discounts is not None:
        pct = discounts.percentage
        if pct is not None and not (pct.is_finite() and 0 <= pct <= 100):
            raise _bad("discounts.percentage", "must be between 0 and 100")
        _non_negative(discounts.usage, "discounts.usage")
        if discounts.usage and not usage:
            raise _bad("discounts.usage", f"does not apply to a {price.type} price")
    commitments = line.commitments
    if commitments is not None:
        _non_negative(commitments.minimum, "commitments.minimum_amount")
        _non_negative(commitments.maximum, "commitments.maximum_amount")
        if (commitments.minimum is not None or commitments.maximum is not None) and not usage:
            raise _bad("commitments", f"do not apply to a {price.type} price")
        low, high = commitments.minimum, commitments.maximum
        if low is not None and high is not None and low > high:
            raise _bad("commitments.minimum_amount", "must not exceed maximum_amount")
    if line.unit_config is not None and not (
        line.unit_config.conversion_factor.is_finite() and line.unit_config.conversion_factor > 0
    ):
        raise _bad("unit_config.conversion_factor", "must be positive")


def _validate_tiers(price: Price) -> None:
    if not price.tiers:
        raise _bad("price.tiers", "at least one tier is required")
    previous: Decimal | None = None
    last = len(price.tiers) - 1
    for i, tier in enumerate(price.tiers):
        where = f"price.tiers[{i}]"
        if tier.unit is None and tier.flat is None:
            raise _bad(where, "needs a unit price, a flat price or both")
        _non_negative(tier.unit, f"{where}.unit_price")
        _non_negative(tier.flat, f"{where}.flat_price")
        if tier.up_to is None:
            if i != last:
                raise _bad(f"{where}.up_to_amount", "only the last tier may be open-ended")
            continue
        _non_negative(tier.up_to, f"{where}.up_to_amount")
        if previous is not None and tier.up_to <= previous:
            raise _bad(f"{where}.up_to_amount", "tier bounds must increase from one tier to the next")
        previous = tier.up_to
