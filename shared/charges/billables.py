"""Charges as `Billable`s: what invoicing reads (`shared/invoices/billables.py`).

`billables(customer_id, until)` is every charge of the customer still waiting for an invoice
(neither final nor deleted; `until` bounds nothing, a charge is one finite item); the invoicing
service decides from `invoice_at` which of them go on an invoice now and which wait on the
gathering one. `key = charge/{id}` is the sync identity, so producing them again changes nothing.
`customers_to_bill(now)` reads the sparse due index (`repository.py`): customers with a pending
charge whose `invoice_at` has come, without a scan. `record_booked` makes a charge final once an
invoice carries it.

`credit_only` charges are not produced: product.md §13.4 settles them against credits only, never
on an invoice line; `Billable` carries no settlement mode, so they wait for the credits path.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.catalog.models import TaxConfig
from shared.charges.models import Charge, ChargeTotals, SettlementMode
from shared.charges.repository import ChargeRepository
from shared.charges.service import ChargeService, rating_line
from shared.invoices.billables import Billable, Origin
from shared.rating.models import Totals


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

    def record_booked(self, charge_id: str, totals: ChargeTotals | Totals, invoice_id: str) -> None:
        self.service.record_booked(charge_id, totals, invoice_id)
