"""Post-pricing mutators, in the engine's order (engine-rules §2.7 "post", product.md §9).

1. Percentage discount (`ratecard_percentage`): `percentage`% of each detailed line's amount.
2. Maximum spend (`maximum_spend`): an amount discount on the detailed line that takes the period's
   billed amount past the maximum, for the excess, and the whole net amount of every line after it.
3. Minimum spend: on the last line of the period only, a `commitment` detailed line for
   `minimum - billed in the period` when the period billed less (also at zero usage).
4. Credits: an amount given by the caller, taken from the detailed lines in order, each up to its
   net total; credits worth more than the line are refused (OpenMeter's
   `ErrInvoiceLineCreditsNotConsumedFully`: they were allocated against usage that isn't there).

Every adjustment is rounded half away from zero to the currency. "Billed in the period" is net of
discounts, before credits; the engine explains how a split line knows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shared.catalog.models import PaymentTerm
from shared.core.errors import InvalidInput
from shared.rating.models import ZERO, AmountDiscount, Category, DetailedLine, DiscountReason, Period
from shared.rating.money import round_amount

HUNDRED = Decimal(100)


@dataclass
class Draft:
    """A detailed line being built; `before`/`after` are its component's cumulative amounts in the
    period at the line's start and end (`amount = after - before`)."""

    key: str
    name: str
    category: Category
    quantity: Decimal
    unit_price: Decimal
    before: Decimal
    after: Decimal
    period: Period
    payment_term: PaymentTerm
    discounts: list[AmountDiscount] = field(default_factory=list)
    credits: Decimal = ZERO

    @property
    def amount(self) -> Decimal:
        return self.after - self.before

    @property
    def net(self) -> Decimal:
        return self.amount - sum((d.amount for d in self.discounts), ZERO) - self.credits

    def freeze(self) -> DetailedLine:
        return DetailedLine(
            key=self.key,
            name=self.name,
            category=self.category,
            quantity=self.quantity,
            unit_price=self.unit_price,
            amount=self.amount,
            period=self.period,
            payment_term=self.payment_term,
            discounts=tuple(self.discounts),
            credits=self.credits,
        )


def percentage_of(amount: Decimal, percentage: Decimal, precision: int) -> Decimal:
    return round_amount(amount * percentage / HUNDRED, precision)


def percentage_discount(drafts: list[Draft], percentage: Decimal, precision: int) -> None:
    """Each line's discount is the difference of the discounts on its cumulative amounts, so the
    split lines of a period add up to exactly the discount of the unsplit line."""
    for d in drafts:
        after, before = (percentage_of(a, percentage, precision) for a in (d.after, d.before))
        amount = after - before
        if amount:
            d.discounts.append(AmountDiscount(DiscountReason.RATECARD_PERCENTAGE, amount, percentage))


def maximum_spend(drafts: list[Draft], maximum: Decimal, billed_before: Decimal, precision: int) -> None:
    """`billed_before`: what the period's earlier lines billed, net of their discounts."""
    cap = round_amount(maximum, precision)
    billed = billed_before
    for d in drafts:
        net = d.net
        excess = min(net, billed + net - cap) if billed + net > cap else ZERO
        if excess > 0:
            d.discounts.append(AmountDiscount(DiscountReason.MAXIMUM_SPEND, excess))
        billed += net - max(excess, ZERO)


def minimum_spend(
    drafts: list[Draft], minimum: Decimal, billed: Decimal, name: str, period: Period, precision: int
) -> None:
    """`billed`: the whole period's billed amount, net of discounts, this line included."""
    short = round_amount(minimum - billed, precision)
    if short > 0:
        drafts.append(
            Draft(
                "minimum-spend",
                f"{name}: minimum spend",
                Category.COMMITMENT,
                Decimal(1),
                short,
                ZERO,
                short,
                period,
                PaymentTerm.IN_ARREARS,
            )
        )


def apply_credits(drafts: list[Draft], credits: Decimal, precision: int) -> None:
    left = round_amount(credits, precision)
    for d in drafts:
        if not left:
            return
        take = min(left, d.net)
        if take > 0:
            d.credits += take
            left -= take
    if left:
        raise InvalidInput.field("credits", f"exceed the line's total by {left}; credits must not exceed it")
