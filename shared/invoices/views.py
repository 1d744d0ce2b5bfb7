"""Invoices in the wire shape of the shared invoice spec (/work notes: invoice-spec.md): snake_case,
amounts as decimal strings at the currency's precision, times RFC 3339 UTC."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.billing.models import Address
from shared.catalog.views import price as price_view
from shared.core.decimals import wire
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.invoices import states
from shared.invoices.models import Invoice, Line, ValidationIssue
from shared.rating.models import Period, Totals
from shared.rating.money import currency_precision

ZERO = Decimal(0)


def _money(value: Decimal, precision: int) -> str:
    return f"{value:.{precision}f}"


def _precision(currency: str) -> int:
    try:
        return currency_precision(currency)
    except Exception:  # a custom currency: amounts as they are
        return 2


def _period(p: Period) -> dict[str, str]:
    return {"from": format_rfc3339(p.start), "to": format_rfc3339(p.end)}


def _address(a: Address | None) -> dict[str, Any] | None:
    if a is None:
        return None
    out = {k: v for k, v in a.__dict__.items() if v is not None}
    return out or None


def _issue(v: ValidationIssue) -> dict[str, Any]:
    out = {"code": v.code, "message": v.message, "severity": v.severity.value}
    if v.field is not None:
        out["field"] = v.field
    return out


def totals(t: Totals, precision: int) -> dict[str, str]:
    def m(value: Decimal) -> str:
        return _money(value, precision)

    return {
        "amount": m(t.amount),
        "charges_total": m(t.charges_total),
        "discounts_total": m(t.discounts_total),
        "credits_total": m(t.credits_total),
        "taxes_inclusive_total": m(ZERO),
        "taxes_exclusive_total": m(ZERO),
        "taxes_total": m(ZERO),
        "total": m(t.total),
    }


def line(x: Line, precision: int, item_id: str | None = None) -> dict[str, Any]:
    b = x.billable
    out: dict[str, Any] = {
        "id": x.id,
        "name": b.name,
        "type": x.type.value,
        "managed_by": x.managed_by.value,
        "status": x.status.value,
        "period": _period(x.period),
        "invoice_at": format_rfc3339(x.invoice_at),
        "late_usage": x.late,
        "price": price_view(b.price),
        "payment_term": b.payment_term.value,
    }
    if b.description:
        out["description"] = b.description
    o = b.origin
    if o.subscription_id:
        out["subscription"] = {
            "id": o.subscription_id,
            "phase": {"key": o.phase_key},
            "item": {"key": o.item_key},
        }
    if o.charge_id:
        out["charge"] = {"id": o.charge_id}
    if b.feature_key:
        out["feature_key"] = b.feature_key
    r = x.rated
    if x.type.value == "flat_fee":
        out["quantity"] = str(b.quantity)
        if b.price.amount is not None:
            out["per_unit_amount"] = _money(b.price.amount, precision)
    elif x.quantity is not None:
        out["metered_quantity"] = wire(x.quantity)
        out["metered_pre_line_period_quantity"] = wire(x.pre_line_quantity)
        out["quantity"] = wire(r.quantity) if r is not None else wire(x.quantity)
        out["pre_line_period_quantity"] = (
            wire(r.pre_line_quantity) if r is not None else wire(x.pre_line_quantity)
        )
    amount_discounts: list[dict[str, Any]] = []
    usage_discounts: list[dict[str, Any]] = []
    detailed: list[dict[str, Any]] = []
    if r is not None:
        for d in r.detailed:
            ds = []
            for a in d.discounts:
                item = {"reason": a.reason.value, "amount": _money(a.amount, precision)}
                if a.percentage is not None:
                    item["percentage"] = wire(a.percentage)
                ds.append(item)
            amount_discounts += ds
            detailed.append(
                {
                    "key": d.key,
                    "name": d.name,
                    "category": d.category.value,
                    "quantity": wire(d.quantity),
                    "unit_price": wire(d.unit_price),
                    "amount": _money(d.amount, precision),
                    "period": _period(d.period),
                    "discounts": ds,
                    "totals": totals(d.totals, precision),
                }
            )
        if r.usage_discount is not None:
            usage_discounts.append(
                {
                    "reason": r.usage_discount.reason.value,
                    "quantity": wire(r.usage_discount.quantity),
                    "pre_line_period_quantity": wire(r.usage_discount.pre_line_period_quantity),
                }
            )
    out["discounts"] = {"amount": amount_discounts, "usage": usage_discounts}
    out["detailed_lines"] = detailed
    out["totals"] = totals(x.totals, precision)
    if item_id is not None:
        out["external_ids"] = {"invoicing": item_id}
    return out


def invoice(
    inv: Invoice,
    documents: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    with_lines: bool = True,
) -> dict[str, Any]:
    precision = _precision(inv.currency)
    s = inv.extended_status
    at = now or inv.updated_at
    facts = inv.facts(at)
    out: dict[str, Any] = {
        "id": inv.id,
        "type": "standard",
        "number": inv.number,
        "status": inv.status.value,
        "status_details": {
            "immutable": states.immutable(s),
            "failed": states.failed(s),
            "extended_status": s,
            "available_actions": [] if inv.gathering else states.available_actions(s, facts),
        },
        "currency": inv.currency,
        "created_at": format_rfc3339(inv.created_at),
        "updated_at": format_rfc3339(inv.updated_at),
        "validation_issues": [_issue(v) for v in inv.validation_issues],
        "totals": totals(inv.totals, precision),
    }
    c = inv.customer
    if c is not None:
        customer: dict[str, Any] = {"id": c.id, "key": c.key, "name": c.name}
        if c.primary_email:
            customer["primary_email"] = c.primary_email
        if (address := _address(c.billing_address)) is not None:
            customer["billing_address"] = address
        if c.tax_id:
            customer["tax_id"] = c.tax_id
        out["customer"] = customer
    else:
        out["customer"] = {"id": inv.customer_id}
    p = inv.profile
    if p is not None:
        supplier: dict[str, Any] = {"name": p.supplier.name}
        if p.supplier.tax_id:
            supplier["tax_id"] = p.supplier.tax_id
        if (address := _address(p.supplier.address)) is not None:
            supplier["address"] = address
        out["supplier"] = supplier
        out["profile"] = {"id": p.id, "name": p.name}
        w = p.workflow
        out["workflow"] = {
            "collection_interval": w.collection_interval,
            "auto_advance": w.auto_advance,
            "draft_period": w.draft_period,
            "due_after": w.due_after,
            "progressive_billing": w.progressive_billing,
            "proration_mode": w.proration_mode.value,
            "collection_method": w.collection_method.value,
        }
    if (period := inv.period) is not None:
        out["period"] = _period(period)
    for name in (
        "collection_at",
        "quantity_snapshotted_at",
        "draft_until",
        "issued_at",
        "due_at",
        "voided_at",
        "paid_at",
        "deleted_at",
    ):
        value = getattr(inv, name)
        if value is not None:
            out[name] = format_rfc3339(value)
    if with_lines:
        items = inv.external_ids.lines if inv.external_ids is not None else {}
        out["lines"] = [line(x, precision, items.get(x.id)) for x in inv.lines]
    if documents:
        out["documents"] = documents
    if inv.labels:
        out["labels"] = inv.labels
    if (ext := inv.external_ids) is not None:
        # OpenMeter's `external_ids`: the invoice in the invoicing and payment apps (Stripe's `in_...`).
        out["external_ids"] = {k: v for k, v in (("invoicing", ext.invoicing), ("payment", ext.payment)) if v}
        if ext.number or ext.hosted_url:
            out["stripe"] = {k: v for k, v in (("number", ext.number), ("hosted_url", ext.hosted_url)) if v}
    return out


def page(query_page: Any, listed: Listed[Invoice], now: datetime) -> dict[str, Any]:
    """List entries carry the header and totals, not the lines (GET by id has them)."""
    data = [invoice(i, now=now, with_lines=False) for i in listed.items]
    result: dict[str, Any] = query_page.response(data, listed.total)
    return result
