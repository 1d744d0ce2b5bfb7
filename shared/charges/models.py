"""Charge domain objects (product.md §12; contract `BillingChargeFlatFee`, `BillingChargeUsageBased`).

A charge is one priced item billed to one customer over one service period, outside any
subscription: a flat fee (an amount, prorated over `full_service_period`) or a usage-based price on
a feature's meter. Invoicing consumes it as a `Billable` (`shared/charges/billables.py`) and tells
it back what became of the invoices carrying its lines (`shared/charges/booking.py`): each line is a
`Booking`, and `booked` is the sum of the lines of issued (not voided) invoices.

Status is derived at the customer's now (like a grant's): `deleted` once deleted, `final` once its
invoicing is done (`final_at`: see `booking.py`), `active` from the service period's start, else
`created`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.catalog.models import PaymentTerm, Price, TaxBehavior
from shared.rating.models import Period, Totals

ZERO = Decimal(0)


class ChargeType(StrEnum):
    FLAT_FEE = "flat_fee"
    USAGE_BASED = "usage_based"


class ChargeStatus(StrEnum):
    CREATED = "created"  # the service period has not started
    ACTIVE = "active"
    FINAL = "final"  # booked on an invoice
    DELETED = "deleted"


class LifecycleController(StrEnum):
    SYSTEM = "system"
    MANUAL = "manual"


class SettlementMode(StrEnum):
    CREDIT_THEN_INVOICE = "credit_then_invoice"
    CREDIT_ONLY = "credit_only"  # product.md §13.4: never an invoice line


class ProrationMode(StrEnum):
    NO_PRORATION = "no_proration"
    PRORATE_PRICES = "prorate_prices"


@dataclass(frozen=True)
class ChargeTaxConfig:
    behavior: TaxBehavior | None = None
    tax_code_id: str | None = None  # `tax_code.id`, else the deprecated `tax_code_id`
    stripe_code: str | None = None  # deprecated `stripe.code`, kept as given
    external_code: str | None = None  # deprecated `external_invoicing.code`, kept as given


@dataclass(frozen=True)
class ChargeTotals:
    """The contract's totals (before/after taxes); taxes are zero until a tax engine exists."""

    amount: Decimal = ZERO
    taxes_total: Decimal = ZERO
    taxes_inclusive_total: Decimal = ZERO
    taxes_exclusive_total: Decimal = ZERO
    charges_total: Decimal = ZERO
    discounts_total: Decimal = ZERO
    credits_total: Decimal = ZERO
    total: Decimal = ZERO

    def __add__(self, other: ChargeTotals) -> ChargeTotals:
        return ChargeTotals(
            **{k: getattr(self, k) + getattr(other, k) for k in ChargeTotals.__dataclass_fields__}
        )

    @classmethod
    def from_rated(cls, t: Totals) -> ChargeTotals:
        """The rating engine's totals (no taxes): taxes zero, total as rated."""
        return cls(
            amount=t.amount,
            charges_total=t.charges_total,
            discounts_total=t.discounts_total,
            credits_total=t.credits_total,
            total=t.total,
        )


class BookingState(StrEnum):
    """What became of one invoice line of the charge; a line only moves forward (issued -> paid or
    voided, paid -> voided), so a replayed or late event never undoes a later one."""

    ISSUED = "issued"  # booked: the invoice is issued, its amounts are final
    PAID = "paid"  # settled
    VOIDED = "voided"  # un-booked: its totals no longer count in `booked`

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {BookingState.ISSUED: 0, BookingState.PAID: 1, BookingState.VOIDED: 2}


@dataclass(frozen=True)
class Booking:
    """One invoice line of the charge, as booked at its invoice's issue (after credits)."""

    line_id: str
    invoice_id: str
    totals: ChargeTotals
    closes: bool  # bills up to the end of the service period: no regular line follows it
    state: BookingState
    booked_at: datetime


@dataclass(frozen=True)
class Charge:
    id: str
    customer_id: str
    type: ChargeType
    name: str
    currency: str
    price: Price  # a flat fee's is `flat` with its amount before proration
    invoice_at: datetime
    service_period: Period
    full_service_period: Period  # defaults to the service period
    billing_period: Period  # defaults to the full service period
    settlement_mode: SettlementMode
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    unique_reference_id: str | None = None
    tax_config: ChargeTaxConfig | None = None
    payment_term: PaymentTerm = PaymentTerm.IN_ARREARS  # flat fees
    discount_percentage: Decimal | None = None
    usage_discount: Decimal | None = None  # usage-based: free units
    feature_key: str | None = None
    feature_id: str | None = None  # the feature the key named at creation: what usage is measured on
    proration_mode: ProrationMode = ProrationMode.PRORATE_PRICES  # flat fees
    amount_after_proration: Decimal | None = None  # flat fees, rounded to the currency
    lifecycle_controller: LifecycleController = LifecycleController.SYSTEM
    bookings: tuple[Booking, ...] = ()  # by line id, in the order they were booked
    final_at: datetime | None = None  # set by booking.py when the charge's invoicing is done
    deleted_at: datetime | None = None
    request_hash: str = ""  # the create request's fingerprint: a reused unique_reference_id compares it
    rev: int = 0  # every update is conditional on it

    def status(self, now: datetime) -> ChargeStatus:
        if self.deleted_at is not None:
            return ChargeStatus.DELETED
        if self.final_at is not None:
            return ChargeStatus.FINAL
        if self.service_period.start <= now:
            return ChargeStatus.ACTIVE
        return ChargeStatus.CREATED

    @property
    def booked(self) -> ChargeTotals:
        """The contract's `totals.booked`: the lines of issued invoices, voided ones left out."""
        out = ChargeTotals()
        for b in self.bookings:
            if b.state is not BookingState.VOIDED:
                out += b.totals
        return out

    @property
    def closed(self) -> bool:
        """Its last regular line is on an issued invoice: nothing more of it will be invoiced (late
        usage apart, which the invoice's gathering entry produces, not the charge)."""
        return any(b.closes for b in self.bookings)

    @property
    def pending(self) -> bool:
        """Waiting to be invoiced: not deleted, and its closing line not issued yet."""
        return not self.closed and self.deleted_at is None

    def advance_after(self, now: datetime) -> datetime | None:
        """The next instant the background lifecycle moves the charge: its service start (created ->
        active), then its invoice time (active -> final); none once final or deleted."""
        status = self.status(now)
        if status is ChargeStatus.CREATED:
            return self.service_period.start
        if status is ChargeStatus.ACTIVE and self.pending:
            return self.invoice_at  # else waiting on a payment: no time moves it
        return None
