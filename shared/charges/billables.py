"""Charges as `Billable`s: what invoicing reads (`shared/invoices/billables.py`).

`billables(customer_id, until)` is every charge of the customer still waiting for an invoice
(neither final nor deleted; `until` bounds nothing, a charge is one finite item); the invoicing
service decides from `invoice_at` which of them go on an invoice now and which wait on the
gathering one. `key = charge/{id}` is the sync identity, so producing them again changes nothing.
`customers_to_bill(now)` reads the sparse due index (`repository.py`): customers with a pending
charge whose `invoice_at` has come, without a scan.

`moved(invoice, status, at)` is invoicing's `Bookings` port (`shared/invoices/ports.py`): the invoice
was issued, paid or voided, and each charge with lines on it books, settles or un-books them
(`booking.py`, which states the rules).

`credit_only` charges are not produced: product.md §13.4 settles them against credits only, never
on an invoice line; `Billable` carries no settlement mode, so they wait for the credits path.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aws_lambda_powertools import Logger

from shared.catalog.models import TaxConfig
from shared.charges.booking import LineEvent
from shared.charges.models import BookingState, Charge, ChargeTotals, SettlementMode
from shared.charges.repository import ChargeRepository
from shared.charges.service import ChargeService, rating_line
from shared.core.errors import NotFound
from shared.core.observability import SERVICE
from shared.invoices.billables import Billable, Origin
from shared.invoices.models import Invoice

log = Logger(service=SERVICE, child=True)


def to_billable(charge: Charge) -> Billable:
    """One charge as invoicing's line: its price, periods, invoice time, discounts, proration, tax."""
    line = rating_line(charge)
    tax = charge.tax_config
    return Billable(
        key=f"charge/{charge.id}",
        customer_id=charge.customer_id,
        currency=charge.currency,
        name=charge.name,
        price=charge.price,
        service_period=charge.service_period,
        billing_period=charge.billing_period,
        invoice_at=charge.invoice_at,
        origin=Origin(charge_id=charge.id),
        payment_term=charge.payment_term,
        feature_key=charge.feature_key if charge.price.usage_based else None,
        discounts=line.discounts,
        tax_config=TaxConfig(tax.tax_code_id, tax.behavior) if tax and tax.tax_code_id else None,
        proration=line.proration,
        description=charge.description,
    )


class ChargeBillables:
    def __init__(self, repo: ChargeRepository, service: ChargeService) -> None:
        self.repo = repo
        self.service = service

    def billables(self, customer_id: str, until: datetime) -> list[Billable]:
        return [
            to_billable(c)
            for c in self.repo.list_for(customer_id)
            if c.pending and c.settlement_mode is not SettlementMode.CREDIT_ONLY
        ]

    def customers_to_bill(self, now: datetime) -> Iterable[str]:
        return sorted(set(self.repo.due_customers(now)))

    def moved(self, invoice: Invoice, status: str, at: datetime) -> None:
        """Book (issued), settle (paid) or un-book (voided) the invoice's charge lines: one
        conditional write per charge with lines on it, none on a replay or for other statuses."""
        state = _STATES.get(status)
        if state is None:
            return
        events: dict[str, list[LineEvent]] = {}
        for line in invoice.lines:
            charge_id = line.billable.origin.charge_id
            if charge_id is None:
                continue
            closes = not line.late and line.period.end >= line.billable.service_period.end
            totals = ChargeTotals.from_rated(line.totals)
            events.setdefault(charge_id, []).append(LineEvent(line.id, invoice.id, totals, closes, state))
        for charge_id, lines in events.items():
            try:
                self.service.book(charge_id, lines, at)
            except NotFound:
                # Charges are never removed, so this is damage, not a race: logged, and the invoice's
                # notices still go out (raising would hold its outbox, and an API void would answer
                # 404 after the void was stored).
                log.error("invoice line of an unknown charge", extra={"charge_id": charge_id})


_STATES = {"issued": BookingState.ISSUED, "paid": BookingState.PAID, "voided": BookingState.VOIDED}
