"""What an invoice bills: one priced item over one service period, from whatever produced it.

Two producers feed the invoicing path through this one type: subscriptions (a rate card of a phase,
or of an add-on, for one billing-cadence period) and charges (`/customers/{id}/charges`). The
invoicing service neither knows nor cares which one made a `Billable`; it keys everything on `key`.

`key` is the sync identity (engine-rules §2.8): stable across re-runs, so producing the same
billables twice changes nothing. Subscription items use
`{subscription_id}/{phase_key}/{item_key}/v[{item_version}]/period[{period_index}]`; charges use
`charge/{charge_id}` (or `charge/{charge_id}/period[{i}]` when a charge recurs).

Periods are half-open `[start, end)` and timezone-aware (`shared.rating.models.Period`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.catalog.models import Commitments, Discounts, PaymentTerm, Price, TaxConfig, UnitConfig
from shared.rating.models import Period, Proration


@dataclass(frozen=True)
class Origin:
    """Where a billable came from: a subscription item, or a charge (exactly one is set)."""

    subscription_id: str | None = None
    phase_key: str | None = None
    item_key: str | None = None  # the rate card's key
    addon_id: str | None = None  # an add-on's rate card
    charge_id: str | None = None


@dataclass(frozen=True)
class Billable:
    key: str
    customer_id: str
    currency: str
    name: str
    price: Price
    service_period: Period  # what this line bills
    billing_period: Period  # the aligned billing period it belongs to
    invoice_at: datetime  # in_advance flat: service start; otherwise max(service end, billing period end)
    origin: Origin
    payment_term: PaymentTerm = PaymentTerm.IN_ARREARS
    feature_key: str | None = None  # usage prices: whose meter gives the quantity
    unit_config: UnitConfig | None = None
    discounts: Discounts | None = None
    commitments: Commitments | None = None
    tax_config: TaxConfig | None = None
    proration: Proration | None = None  # flat prices: the full cadence period and how to prorate
    quantity: int = 1  # flat prices: add-on quantity (a multiple-instance add-on bills n times)
    description: str | None = None
