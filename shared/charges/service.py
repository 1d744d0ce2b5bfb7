"""Charge use cases: create (idempotent by `unique_reference_id`), list, real-time totals, and the
invoice's call-back `book`. Typed inputs in (`requests`), domain objects out, domain errors
raised (no HTTP).

Idempotent creation: the reference's claim is written with the charge in one transaction. The same
reference with the same body (the same JSON, keys in any order) answers the existing charge (201,
as the first time); with a different body it is a 400 naming `unique_reference_id` and the existing
charge (the contract declares no 409 on create): a retried create never makes a second charge, and
a reused reference never silently drops a change.

Real-time totals (`expand=real_time_usage`, usage-based charges): the feature's meter usage for the
customer over the service period so far (`[from, min(now, to))`, the customer's now), rated by the
pure engine (`shared.rating.rate`) as the invoice will rate it. Booked totals are what issued invoices
carry of the charge (`book`, `shared/charges/booking.py`); zero until the first is issued.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from shared.catalog.models import Discounts, PaymentTerm, PriceType, TaxBehavior
from shared.charges import booking
from shared.charges.booking import LineEvent
from shared.charges.models import (
    Charge,
    ChargeStatus,
    ChargeTaxConfig,
    ChargeTotals,
    ChargeType,
    ProrationMode,
    SettlementMode,
)
from shared.charges.repository import ChargeConflict, ChargeRepository
from shared.charges.requests import CreateCharge, FlatFeeIn, ListChargesQuery
from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.ids import new_id
from shared.core.listing import Listed, sort_items
from shared.core.timeutil import Clock, ceil_minute
from shared.rating.engine import rate
from shared.rating.models import BillableLine, Period, Proration
from shared.rating.money import currency_precision
from shared.rating.proration import prorated

_ATTEMPTS = 4  # a create that lost a reference race re-reads the winner


class FeatureUsage(Protocol):
    """What charges need of features and usage (bootstrap fills it: `shared/charges/usage.py`)."""

    def resolve(self, feature_key: str) -> tuple[str, bool] | None:
        """The live feature with this key: (its id, whether it has a meter); None if there is none."""
        ...

    def usage(self, customer_id: str, feature_id: str, period: Period) -> Decimal:
        """The feature's meter aggregate over `period` for every subject of the customer."""
        ...


@dataclass(frozen=True)
class ChargeState:
    """A charge as read at the customer's now, with its real-time totals when asked for."""

    charge: Charge
    now: datetime
    realtime: ChargeTotals | None = None

    @property
    def status(self) -> ChargeStatus:
        return self.charge.status(self.now)


_SORTS: dict[str, Callable[[ChargeState], object]] = {
    "id": lambda s: s.charge.id,
    "created_at": lambda s: s.charge.created_at,
    "service_period.from": lambda s: s.charge.service_period.start,
    "billing_period.from": lambda s: s.charge.billing_period.start,
}


def amount_after_proration(
    amount: Decimal, currency: str, service: Period, full: Period, mode: ProrationMode
) -> Decimal:
    """The flat amount for the service period: `amount x service / full` (exact durations, rounded to
    the currency) under `prorate_prices`, the whole amount under `no_proration`; the same function the
    invoice's rating applies, so the charge shows what will be billed before discounts."""
    proration = Proration(full, enabled=mode is ProrationMode.PRORATE_PRICES)
    return prorated(amount, service, proration, currency_precision(currency))


def rating_line(charge: Charge, quantity: Decimal = Decimal(0)) -> BillableLine:
    """The charge as the rating engine's line over its service period (pure)."""
    discounts = None
    if charge.discount_percentage is not None or charge.usage_discount is not None:
        discounts = Discounts(charge.discount_percentage, charge.usage_discount)
    flat = charge.price.type is PriceType.FLAT
    return BillableLine(
        name=charge.name,
        currency=charge.currency,
        price=charge.price,
        period=charge.service_period,
        quantity=quantity,
        payment_term=charge.payment_term,
        discounts=discounts,
        proration=Proration(
            charge.full_service_period, enabled=charge.proration_mode is ProrationMode.PRORATE_PRICES
        )
        if flat
        else None,
    )


class ChargeService:
    def __init__(
        self,
        repo: ChargeRepository,
        customer_exists: Callable[[str], bool],
        tax_code_exists: Callable[[str], bool],
        usage: FeatureUsage,
        clock: Clock | None = None,
        now_for: Callable[[str], datetime] | None = None,
    ) -> None:
        self.repo = repo
        self.customer_exists = customer_exists
        self.tax_code_exists = tax_code_exists
        self.usage = usage
        self.clock = clock or Clock()
        # A customer on a test clock lives on its time (status, real-time usage).
        self.now_for = now_for or (lambda _customer: self.clock.now())

    def _customer(self, customer_id: str) -> None:
        if not self.customer_exists(customer_id):
            raise NotFound(f"Customer [{customer_id}] not found")

    # -- create --------------------------------------------------------------------------------------
    def create(self, customer_id: str, req: CreateCharge) -> ChargeState:
        # The contract declares no 404 on create (400, 401, 403 only): an unknown customer is a bad
        # path parameter there, while the list answers 404 as it declares.
        if not self.customer_exists(customer_id):
            raise InvalidInput.field("customerId", f"no customer with id [{customer_id}]", "invalid", "path")
        body = req.body
        if (existing := self._replay(customer_id, req)) is not None:
            return existing
        feature_id = self._check_references(req)
        now = self.clock.now()
        tax = body.tax_config
        percentage = body.discounts.percentage if body.discounts is not None else None
        charge = Charge(
            id=new_id(),
            customer_id=customer_id,
            type=req.type,
            name=body.name,
            description=body.description,
            labels=body.labels,
            currency=body.currency,
            price=req.price,
            invoice_at=body.invoice_at,
            service_period=req.service_period,
            full_service_period=req.full_service_period,
            billing_period=req.billing_period,
            settlement_mode=SettlementMode(body.settlement_mode),
            created_at=now,
            updated_at=now,
            unique_reference_id=body.unique_reference_id,
            tax_config=ChargeTaxConfig(
                TaxBehavior(tax.behavior) if tax.behavior else None,
                tax.code_id,
                tax.stripe.code if tax.stripe else None,
                tax.external_invoicing.code if tax.external_invoicing else None,
            )
            if tax
            else None,
            discount_percentage=percentage,
            feature_key=body.feature_key,
            feature_id=feature_id,
            request_hash=req.fingerprint,
        )
        if isinstance(body, FlatFeeIn):
            assert req.price.amount is not None
            mode = ProrationMode(body.proration_configuration.mode)
            charge = replace(
                charge,
                payment_term=PaymentTerm(body.payment_term),
                proration_mode=mode,
                amount_after_proration=amount_after_proration(
                    req.price.amount, charge.currency, charge.service_period, charge.full_service_period, mode
                ),
            )
        else:
            usage = body.discounts.usage if body.discounts is not None else None
            charge = replace(
                charge,
                proration_mode=ProrationMode.NO_PRORATION,  # usage prices are never prorated
                usage_discount=Decimal(usage) if usage is not None else None,
            )
        for _ in range(_ATTEMPTS):
            try:
                self.repo.create(charge)
                return self._state(charge)
            except ChargeConflict:
                # Another create took the reference first: answer as a replay would.
                if (existing := self._replay(customer_id, req)) is not None:
                    return existing
        raise Conflict(f"Charges of customer [{customer_id}] changed concurrently; retry")

    def _replay(self, customer_id: str, req: CreateCharge) -> ChargeState | None:
        reference = req.body.unique_reference_id
        if reference is None:
            return None
        owner = self.repo.reference_owner(customer_id, reference)
        if owner is None:
            return None
        existing = self.repo.get(customer_id, owner)
        if existing is None:  # the claim is written with its charge: only a torn read gets here
            raise Conflict(f"A charge with unique_reference_id [{reference}] is being created; retry")
        if existing.request_hash != req.fingerprint:
            # A 400 naming the field (the contract declares no 409 on create; Stripe answers a reused
            # idempotency key with other parameters the same way).
            raise InvalidInput.field(
                "unique_reference_id",
                f"already names charge [{existing.id}], created with a different body",
                "invalid",
                "body",
            )
        return self._state(existing)

    def _check_references(self, req: CreateCharge) -> str | None:
        """The feature's id (if one is named); InvalidInput for a missing feature or tax code."""
        body = req.body
        key = body.feature_key
        feature_id = None
        if key is not None:
            found = self.usage.resolve(key)
            if found is None:
                raise InvalidInput.field("feature_key", f"no feature with key [{key}]", "invalid", "body")
            feature_id, metered = found
            if req.type is ChargeType.USAGE_BASED and not metered:
                raise InvalidInput.field(
                    "feature_key", f"feature [{key}] has no meter to measure usage with", "invalid", "body"
                )
        tax = body.tax_config
        if tax is not None and tax.code_id is not None and not self.tax_code_exists(tax.code_id):
            field = "tax_config.tax_code.id" if tax.tax_code is not None else "tax_config.tax_code_id"
            raise InvalidInput.field(field, f"no tax code with id [{tax.code_id}]", "invalid", "body")
        return feature_id

    # -- read ----------------------------------------------------------------------------------------
    def _state(self, charge: Charge, real_time: bool = False) -> ChargeState:
        now = self.now_for(charge.customer_id)
        return ChargeState(charge, now, self.realtime(charge, now) if real_time else None)

    def list(self, customer_id: str, query: ListChargesQuery) -> Listed[ChargeState]:
        self._customer(customer_id)
        now = self.now_for(customer_id)
        states = [ChargeState(c, now) for c in self.repo.list_for(customer_id)]
        if query.status is not None:
            status = query.status
            states = [s for s in states if status.matches(s.status.value)]
        states = sort_items(states, query.sort, _SORTS, "id")
        listed = Listed.of(query.page, states)
        if query.real_time_usage:  # only the page's charges are rated (each reads its usage)
            listed = Listed(
                [replace(s, realtime=self.realtime(s.charge, now)) for s in listed.items], listed.total
            )
        return listed

    def realtime(self, charge: Charge, now: datetime) -> ChargeTotals | None:
        """The usage-based charge rated on its usage so far; None for a flat fee (no totals on it)."""
        if charge.type is not ChargeType.USAGE_BASED or charge.feature_id is None:
            return None
        period = charge.service_period
        # Up to the end of the current minute: usage is counted by the minute, and this one's so far
        # is already in.
        so_far = Period(period.start, min(ceil_minute(now), period.end))
        quantity = Decimal(0)
        if so_far.end > so_far.start and charge.price.usage_based:
            quantity = self.usage.usage(charge.customer_id, charge.feature_id, so_far)
        return ChargeTotals.from_rated(rate(rating_line(charge, quantity)).totals)

    # -- invoicing's call-back -----------------------------------------------------------------------
    def book(self, charge_id: str, events: Sequence[LineEvent], at: datetime) -> Charge:
        """Record what became of the charge's invoice lines (`shared/charges/booking.py`): booked at
        issue, settled when paid, un-booked when voided. Idempotent per (charge, line, state): a
        replay writes nothing. A deleted charge still books (its lines were billed). NotFound for an
        unknown charge."""
        for _ in range(_ATTEMPTS):
            customer_id = self.repo.customer_of(charge_id)
            charge = self.repo.get(customer_id, charge_id) if customer_id else None
            if charge is None:
                raise NotFound(f"Charge [{charge_id}] not found")
            after = booking.apply(charge, events, at)
            if after is None:
                return charge
            try:
                self.repo.update(after)
                return after
            except ChargeConflict:
                continue  # changed since read: re-read and apply again
        raise Conflict(f"Charge [{charge_id}] changed concurrently; retry")
