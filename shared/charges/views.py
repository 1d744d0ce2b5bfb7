"""Charge domain objects -> the contract's JSON (`BillingChargeFlatFee`, `BillingChargeUsageBased`,
`ChargePagePaginatedResponse`): decimal strings, RFC 3339, snake_case, only the fields each branch
declares (both are `additionalProperties: false`: totals only on usage-based charges)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shared.api.params import Page
from shared.catalog import views as catalog_views
from shared.charges.models import Charge, ChargeTotals, ChargeType
from shared.charges.service import ChargeState
from shared.core.decimals import wire
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.rating.models import Period


def _period(p: Period) -> dict[str, str]:
    return {"from": format_rfc3339(p.start), "to": format_rfc3339(p.end)}


def _number(value: Decimal) -> int | float:
    """Contract `number` fields (the discount percentage): an int when whole."""
    return int(value) if value == value.to_integral_value() else float(value)


def totals(t: ChargeTotals) -> dict[str, str]:
    return {
        "amount": wire(t.amount),
        "taxes_total": wire(t.taxes_total),
        "taxes_inclusive_total": wire(t.taxes_inclusive_total),
        "taxes_exclusive_total": wire(t.taxes_exclusive_total),
        "charges_total": wire(t.charges_total),
        "discounts_total": wire(t.discounts_total),
        "credits_total": wire(t.credits_total),
        "total": wire(t.total),
    }


def _tax(c: Charge) -> dict[str, Any] | None:
    tax = c.tax_config
    if tax is None:
        return None
    body: dict[str, Any] = {}
    if tax.behavior is not None:
        body["behavior"] = tax.behavior.value
    if tax.tax_code_id is not None:
        body["tax_code"] = {"id": tax.tax_code_id}
    if tax.stripe_code is not None:
        body["stripe"] = {"code": tax.stripe_code}
    if tax.external_code is not None:
        body["external_invoicing"] = {"code": tax.external_code}
    return body


def charge(state: ChargeState) -> dict[str, Any]:
    c = state.charge
    body: dict[str, Any] = {
        "id": c.id,
        "type": c.type.value,
        "name": c.name,
        "created_at": format_rfc3339(c.created_at),
        "updated_at": format_rfc3339(c.updated_at),
        "customer": {"id": c.customer_id},
        "lifecycle_controller": c.lifecycle_controller.value,
        "currency": c.currency,
        "status": state.status.value,
        "invoice_at": format_rfc3339(c.invoice_at),
        "service_period": _period(c.service_period),
        "full_service_period": _period(c.full_service_period),
        "billing_period": _period(c.billing_period),
        "settlement_mode": c.settlement_mode.value,
        "price": catalog_views.price(c.price),
    }
    optional: dict[str, Any] = {
        "description": c.description,
        "labels": c.labels,
        "deleted_at": format_rfc3339(c.deleted_at) if c.deleted_at else None,
        "unique_reference_id": c.unique_reference_id,
        "tax_config": _tax(c),
        "feature_key": c.feature_key,
    }
    if (advance := c.advance_after(state.now)) is not None:
        optional["advance_after"] = format_rfc3339(advance)
    discounts: dict[str, Any] = {}
    if c.discount_percentage is not None:
        discounts["percentage"] = _number(c.discount_percentage)
    if c.type is ChargeType.FLAT_FEE:
        assert c.amount_after_proration is not None
        body["payment_term"] = c.payment_term.value
        body["proration_configuration"] = {"mode": c.proration_mode.value}
        body["amount_after_proration"] = {"amount": wire(c.amount_after_proration), "currency": c.currency}
    else:
        if c.usage_discount is not None:
            discounts["usage"] = wire(c.usage_discount)
        body["totals"] = {"booked": totals(c.booked)}
        if state.realtime is not None:
            body["totals"]["realtime"] = totals(state.realtime)
    if discounts:
        optional["discounts"] = discounts
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def page(p: Page, listed: Listed[ChargeState]) -> dict[str, Any]:
    return p.response([charge(s) for s in listed.items], listed.total)
