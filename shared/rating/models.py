"""What the rating engine reads and what it returns.

The price and its modifiers are the catalog's own types (`shared.catalog.models`: `Price`, `Tier`,
`UnitConfig`, `Discounts`, `Commitments`, `PaymentTerm`); this module adds only what rating needs on
top: the billable line (its quantities and periods), flat-fee proration, and the rated result.

Periods are half-open `[start, end)` and timezone-aware. Quantities are the meter's, before any unit
conversion. A line of a progressively billed period knows the period (`split_period`) and how much
of the period was metered before it (`pre_line_quantity`); `pre_line_quantity + quantity` is the
usage metered from the period's start to the line's end, which is what the invoice layer must pass
for every aggregation (for `unique_count` or `max` a period is not the sum of its pieces).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from shared.catalog.models import Commitments, Discounts, PaymentTerm, Price, RateCard, UnitConfig

ZERO = Decimal(0)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Period:
    """`[start, end)`, timezone-aware."""

    start: datetime
    end: datetime

    @property
    def microseconds(self) -> int:
        """The exact length (Python's finest resolution): what proration compares."""
        return (self.end - self.start) // _MICROSECOND

    def contains(self, other: Period) -> bool:
        return self.start <= other.start and other.end <= self.end


class EndProrationMode(StrEnum):
    """The billing profile's `subscription_end_proration_mode` (engine-rules §2.8, §2.9)."""

    BILL_ACTUAL_PERIOD = "bill_actual_period"  # a period cut short by the subscription's end is prorated
    BILL_FULL_PERIOD = "bill_full_period"  # ... is charged in full


@dataclass(frozen=True)
class Proration:
    """How a flat fee follows a service period shorter than its cadence (engine-rules §2.8).

    `full_period` is the unshortened cadence period the amount is priced for; `enabled` is the plan's
    `pro_rating_enabled`; `subscription_end` the subscription's end, if it has one.
    """

    full_period: Period
    enabled: bool = True
    subscription_end: datetime | None = None
    end_mode: EndProrationMode = EndProrationMode.BILL_ACTUAL_PERIOD


@dataclass(frozen=True)
class BillableLine:
    """One line to rate: a price over a service period, with this line's metered quantity."""

    name: str
    currency: str
    price: Price
    period: Period
    quantity: Decimal = ZERO  # metered in `period` (usage prices; ignored for flat and free)
    pre_line_quantity: Decimal = ZERO  # metered in the split period before `period` (progressive billing)
    split_period: Period | None = None  # the whole service period when progressively billed
    payment_term: PaymentTerm = PaymentTerm.IN_ARREARS  # flat prices
    unit_config: UnitConfig | None = None
    discounts: Discounts | None = None
    commitments: Commitments | None = None
    proration: Proration | None = None  # flat prices
    credits: Decimal = ZERO  # credit amount to apply to this line, last
    # Usage of `full_period` that arrived after its last line was invoiced (`pre_line_quantity`: all
    # that was billed). It bills only the difference: no flat fee, no minimum spend again. Unit and
    # graduated prices only (a volume price can fall when usage grows).
    late: bool = False

    @property
    def full_period(self) -> Period:
        return self.split_period or self.period

    @property
    def is_first_in_period(self) -> bool:
        return not self.late and self.period.start == self.full_period.start

    @property
    def is_last_in_period(self) -> bool:
        return not self.late and self.period.end == self.full_period.end

    @classmethod
    def from_rate_card(
        cls,
        rate_card: RateCard,
        *,
        currency: str,
        period: Period,
        quantity: Decimal = ZERO,
        pre_line_quantity: Decimal = ZERO,
        split_period: Period | None = None,
        proration: Proration | None = None,
        credits: Decimal = ZERO,
        late: bool = False,
    ) -> BillableLine:
        """A line priced by a catalog rate card: its name, price, payment term, unit config, discounts
        and commitments."""
        return cls(
            name=rate_card.name,
            currency=currency,
            price=rate_card.price,
            period=period,
            quantity=quantity,
            pre_line_quantity=pre_line_quantity,
            split_period=split_period,
            payment_term=rate_card.payment_term,
            unit_config=rate_card.unit_config,
            discounts=rate_card.discounts,
            commitments=rate_card.commitments,
            proration=proration,
            credits=credits,
            late=late,
        )


class Category(StrEnum):
    REGULAR = "regular"
    COMMITMENT = "commitment"  # minimum spend: counted in `charges_total`


class DiscountReason(StrEnum):
    RATECARD_PERCENTAGE = "ratecard_percentage"
    MAXIMUM_SPEND = "maximum_spend"
    RATECARD_USAGE = "ratecard_usage"


@dataclass(frozen=True)
class AmountDiscount:
    reason: DiscountReason
    amount: Decimal
    percentage: Decimal | None = None  # ratecard_percentage only


@dataclass(frozen=True)
class UsageDiscount:
    """Free units (reason `ratecard_usage`) taken from this line, and from the period's earlier lines."""

    quantity: Decimal
    pre_line_period_quantity: Decimal
    reason: DiscountReason = DiscountReason.RATECARD_USAGE


@dataclass(frozen=True)
class Totals:
    amount: Decimal = ZERO  # regular detailed lines
    charges_total: Decimal = ZERO  # commitment (minimum spend) lines
    discounts_total: Decimal = ZERO
    credits_total: Decimal = ZERO
    total: Decimal = ZERO  # amount + charges_total - discounts_total - credits_total (before taxes)

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.amount + other.amount,
            self.charges_total + other.charges_total,
            self.discounts_total + other.discounts_total,
            self.credits_total + other.credits_total,
            self.total + other.total,
        )


@dataclass(frozen=True)
class DetailedLine:
    """One priced component of a line (a tier's usage, a tier's flat fee, the minimum spend...).

    `key` is stable for the component across re-ratings and split lines (`usage`, `tier-2-usage`,
    `tier-2-flat`, `volume-usage`, `flat`, `minimum-spend`). `amount` is already rounded to the
    currency; see the engine's docstring for why it can differ from `quantity * unit_price` by less
    than the currency's unit on a split line.
    """

    key: str
    name: str
    category: Category
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    period: Period
    payment_term: PaymentTerm = PaymentTerm.IN_ARREARS
    discounts: tuple[AmountDiscount, ...] = ()
    credits: Decimal = ZERO

    @property
    def totals(self) -> Totals:
        discounts = sum((d.amount for d in self.discounts), ZERO)
        commitment = self.category is Category.COMMITMENT
        amount, charges = (ZERO, self.amount) if commitment else (self.amount, ZERO)
        return Totals(amount, charges, discounts, self.credits, amount + charges - discounts - self.credits)


@dataclass(frozen=True)
class RatedLine:
    """The rated line: its detailed lines and their totals (the sum of the rounded detailed lines).

    `quantity` and `pre_line_quantity` are in billing units (after the unit config and the usage
    discount); `metered_*` are the meter's quantities as given.
    """

    currency: str
    precision: int
    detailed: tuple[DetailedLine, ...]
    quantity: Decimal = ZERO
    pre_line_quantity: Decimal = ZERO
    metered_quantity: Decimal = ZERO
    metered_pre_line_quantity: Decimal = ZERO
    usage_discount: UsageDiscount | None = None
    totals: Totals = field(default_factory=Totals)
