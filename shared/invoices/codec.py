"""Invoices and lines to and from the JSON documents the repository stores (exact: Decimals as
strings, times RFC 3339). Storage only: the wire shape is views.py."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.billing.models import (
    Address,
    Alignment,
    AlignmentType,
    AppType,
    CollectionMethod,
    ProrationMode,
    Supplier,
    TaxBehavior,
    Workflow,
)
from shared.catalog.models import (
    Commitments,
    Discounts,
    PaymentTerm,
    Price,
    PriceType,
    Rounding,
    TaxConfig,
    Tier,
    UnitConfig,
    UnitOperation,
)
from shared.catalog.models import TaxBehavior as CatalogTaxBehavior
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.invoices.billables import Billable, Origin
from shared.invoices.models import (
    AppSnapshot,
    CustomerSnapshot,
    ExternalIds,
    Line,
    Notice,
    ProfileSnapshot,
    Severity,
    ValidationIssue,
)
from shared.rating.models import (
    AmountDiscount,
    Category,
    DetailedLine,
    DiscountReason,
    EndProrationMode,
    Period,
    Proration,
    RatedLine,
    Totals,
    UsageDiscount,
)

Doc = dict[str, Any]


def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dd(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _t(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)


def _tt(value: Any) -> datetime | None:
    return None if value is None else parse_rfc3339(value)


def _clean(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if v is not None}


def period(p: Period) -> Doc:
    return {"from": format_rfc3339(p.start), "to": format_rfc3339(p.end)}


def to_period(doc: Doc) -> Period:
    return Period(parse_rfc3339(doc["from"]), parse_rfc3339(doc["to"]))


# -- the billable ---------------------------------------------------------------------------------
def price(p: Price) -> Doc:
    return _clean(
        {
            "type": p.type.value,
            "amount": _d(p.amount),
            "tiers": [_clean({"up_to": _d(t.up_to), "flat": _d(t.flat), "unit": _d(t.unit)}) for t in p.tiers]
            or None,
        }
    )


def to_price(doc: Doc) -> Price:
    tiers = tuple(
        Tier(_dd(t.get("up_to")), _dd(t.get("flat")), _dd(t.get("unit"))) for t in doc.get("tiers", [])
    )
    return Price(PriceType(doc["type"]), _dd(doc.get("amount")), tiers)


def billable(b: Billable) -> Doc:
    o = b.origin
    uc = b.unit_config
    pr = b.proration
    return _clean(
        {
            "key": b.key,
            "customer_id": b.customer_id,
            "currency": b.currency,
            "name": b.name,
            "price": price(b.price),
            "service_period": period(b.service_period),
            "billing_period": period(b.billing_period),
            "invoice_at": format_rfc3339(b.invoice_at),
            "origin": _clean(
                {
                    "subscription_id": o.subscription_id,
                    "phase_key": o.phase_key,
                    "item_key": o.item_key,
                    "addon_id": o.addon_id,
                    "charge_id": o.charge_id,
                }
            ),
            "payment_term": b.payment_term.value,
            "feature_key": b.feature_key,
            "unit_config": None
            if uc is None
            else _clean(
                {
                    "operation": uc.operation.value,
                    "conversion_factor": str(uc.conversion_factor),
                    "rounding": uc.rounding.value,
                    "precision": uc.precision,
                    "display_unit": uc.display_unit,
                }
            ),
            "discounts": None
            if b.discounts is None
            else _clean({"percentage": _d(b.discounts.percentage), "usage": _d(b.discounts.usage)}),
            "commitments": None
            if b.commitments is None
            else _clean({"minimum": _d(b.commitments.minimum), "maximum": _d(b.commitments.maximum)}),
            "tax_config": None
            if b.tax_config is None
            else _clean(
                {
                    "code_id": b.tax_config.code_id,
                    "behavior": b.tax_config.behavior.value if b.tax_config.behavior else None,
                }
            ),
            "proration": None
            if pr is None
            else _clean(
                {
                    "full_period": period(pr.full_period),
                    "enabled": pr.enabled,
                    "subscription_end": _t(pr.subscription_end),
                    "end_mode": pr.end_mode.value,
                }
            ),
            "quantity": b.quantity,
            "description": b.description,
        }
    )


def to_billable(doc: Doc) -> Billable:
    uc = doc.get("unit_config")
    dis = doc.get("discounts")
    com = doc.get("commitments")
    tax = doc.get("tax_config")
    pr = doc.get("proration")
    return Billable(
        key=doc["key"],
        customer_id=doc["customer_id"],
        currency=doc["currency"],
        name=doc["name"],
        price=to_price(doc["price"]),
        service_period=to_period(doc["service_period"]),
        billing_period=to_period(doc["billing_period"]),
        invoice_at=parse_rfc3339(doc["invoice_at"]),
        origin=Origin(**doc.get("origin", {})),
        payment_term=PaymentTerm(doc["payment_term"]),
        feature_key=doc.get("feature_key"),
        unit_config=None
        if uc is None
        else UnitConfig(
            UnitOperation(uc["operation"]),
            Decimal(uc["conversion_factor"]),
            Rounding(uc["rounding"]),
            int(uc["precision"]),
            uc.get("display_unit"),
        ),
        discounts=None if dis is None else Discounts(_dd(dis.get("percentage")), _dd(dis.get("usage"))),
        commitments=None if com is None else Commitments(_dd(com.get("minimum")), _dd(com.get("maximum"))),
        tax_config=None
        if tax is None
        else TaxConfig(tax["code_id"], CatalogTaxBehavior(tax["behavior"]) if tax.get("behavior") else None),
        proration=None
        if pr is None
        else Proration(
            to_period(pr["full_period"]),
            bool(pr["enabled"]),
            _tt(pr.get("subscription_end")),
            EndProrationMode(pr["end_mode"]),
        ),
        quantity=int(doc.get("quantity", 1)),
        description=doc.get("description"),
    )


# -- rated lines ----------------------------------------------------------------------------------
def totals(t: Totals) -> Doc:
    return {
        "amount": str(t.amount),
        "charges_total": str(t.charges_total),
        "discounts_total": str(t.discounts_total),
        "credits_total": str(t.credits_total),
        "total": str(t.total),
    }


def to_totals(doc: Doc) -> Totals:
    return Totals(
        Decimal(doc["amount"]),
        Decimal(doc["charges_total"]),
        Decimal(doc["discounts_total"]),
        Decimal(doc["credits_total"]),
        Decimal(doc["total"]),
    )


def rated(r: RatedLine) -> Doc:
    return _clean(
        {
            "currency": r.currency,
            "precision": r.precision,
            "quantity": str(r.quantity),
            "pre_line_quantity": str(r.pre_line_quantity),
            "metered_quantity": str(r.metered_quantity),
            "metered_pre_line_quantity": str(r.metered_pre_line_quantity),
            "usage_discount": None
            if r.usage_discount is None
            else {
                "quantity": str(r.usage_discount.quantity),
                "pre_line_period_quantity": str(r.usage_discount.pre_line_period_quantity),
            },
            "detailed": [
                {
                    "key": d.key,
                    "name": d.name,
                    "category": d.category.value,
                    "quantity": str(d.quantity),
                    "unit_price": str(d.unit_price),
                    "amount": str(d.amount),
                    "period": period(d.period),
                    "payment_term": d.payment_term.value,
                    "discounts": [
                        _clean(
                            {
                                "reason": a.reason.value,
                                "amount": str(a.amount),
                                "percentage": _d(a.percentage),
                            }
                        )
                        for a in d.discounts
                    ],
                    "credits": str(d.credits),
                }
                for d in r.detailed
            ],
            "totals": totals(r.totals),
        }
    )


def to_rated(doc: Doc) -> RatedLine:
    ud = doc.get("usage_discount")
    return RatedLine(
        currency=doc["currency"],
        precision=int(doc["precision"]),
        detailed=tuple(
            DetailedLine(
                key=d["key"],
                name=d["name"],
                category=Category(d["category"]),
                quantity=Decimal(d["quantity"]),
                unit_price=Decimal(d["unit_price"]),
                amount=Decimal(d["amount"]),
                period=to_period(d["period"]),
                payment_term=PaymentTerm(d["payment_term"]),
                discounts=tuple(
                    AmountDiscount(
                        DiscountReason(a["reason"]), Decimal(a["amount"]), _dd(a.get("percentage"))
                    )
                    for a in d["discounts"]
                ),
                credits=Decimal(d["credits"]),
            )
            for d in doc["detailed"]
        ),
        quantity=Decimal(doc["quantity"]),
        pre_line_quantity=Decimal(doc["pre_line_quantity"]),
        metered_quantity=Decimal(doc["metered_quantity"]),
        metered_pre_line_quantity=Decimal(doc["metered_pre_line_quantity"]),
        usage_discount=None
        if ud is None
        else UsageDiscount(Decimal(ud["quantity"]), Decimal(ud["pre_line_period_quantity"])),
        totals=to_totals(doc["totals"]),
    )


# -- lines ----------------------------------------------------------------------------------------
def line(x: Line) -> Doc:
    return _clean(
        {
            "id": x.id,
            "key": x.key,
            "billable": billable(x.billable),
            "period": period(x.period),
            "invoice_at": format_rfc3339(x.invoice_at),
            "late": x.late or None,
            "pre_line_quantity": str(x.pre_line_quantity),
            "quantity": _d(x.quantity),
            "rated": None if x.rated is None else rated(x.rated),
            "credits": str(x.credits),
        }
    )


def to_line(doc: Doc) -> Line:
    return Line(
        id=doc["id"],
        key=doc["key"],
        billable=to_billable(doc["billable"]),
        period=to_period(doc["period"]),
        invoice_at=parse_rfc3339(doc["invoice_at"]),
        late=bool(doc.get("late", False)),
        pre_line_quantity=Decimal(doc.get("pre_line_quantity", "0")),
        quantity=_dd(doc.get("quantity")),
        rated=None if doc.get("rated") is None else to_rated(doc["rated"]),
        credits=Decimal(doc.get("credits", "0")),
    )


# -- snapshots ------------------------------------------------------------------------------------
def _address(a: Address | None) -> Doc | None:
    if a is None:
        return None
    return _clean(dict(a.__dict__))


def _to_address(doc: Doc | None) -> Address | None:
    return None if doc is None else Address(**doc)


def customer(c: CustomerSnapshot) -> Doc:
    return _clean(
        {
            "id": c.id,
            "key": c.key,
            "name": c.name,
            "primary_email": c.primary_email,
            "billing_address": _address(c.billing_address),
            "tax_id": c.tax_id,
        }
    )


def to_customer(doc: Doc) -> CustomerSnapshot:
    return CustomerSnapshot(
        doc["id"],
        doc["key"],
        doc["name"],
        doc.get("primary_email"),
        _to_address(doc.get("billing_address")),
        doc.get("tax_id"),
    )


def workflow(w: Workflow) -> Doc:
    return _clean(
        {
            "alignment": _clean(
                {
                    "type": w.alignment.type.value,
                    "anchor": _t(w.alignment.anchor),
                    "interval": w.alignment.interval,
                }
            ),
            "collection_interval": w.collection_interval,
            "auto_advance": w.auto_advance,
            "draft_period": w.draft_period,
            "progressive_billing": w.progressive_billing,
            "proration_mode": w.proration_mode.value,
            "collection_method": w.collection_method.value,
            "due_after": w.due_after,
            "tax_enabled": w.tax_enabled,
            "tax_enforced": w.tax_enforced,
            "tax_behavior": w.tax_behavior.value if w.tax_behavior else None,
        }
    )


def to_workflow(doc: Doc) -> Workflow:
    a = doc.get("alignment", {})
    return Workflow(
        alignment=Alignment(
            AlignmentType(a.get("type", "subscription")), _tt(a.get("anchor")), a.get("interval")
        ),
        collection_interval=doc["collection_interval"],
        auto_advance=bool(doc["auto_advance"]),
        draft_period=doc["draft_period"],
        progressive_billing=bool(doc["progressive_billing"]),
        proration_mode=ProrationMode(doc["proration_mode"]),
        collection_method=CollectionMethod(doc["collection_method"]),
        due_after=doc["due_after"],
        tax_enabled=bool(doc.get("tax_enabled", True)),
        tax_enforced=bool(doc.get("tax_enforced", False)),
        tax_behavior=TaxBehavior(doc["tax_behavior"]) if doc.get("tax_behavior") else None,
    )


def profile(p: ProfileSnapshot) -> Doc:
    s = p.supplier
    return {
        "id": p.id,
        "name": p.name,
        "supplier": _clean(
            {"name": s.name, "key": s.key, "tax_id": s.tax_id, "address": _address(s.address)}
        ),
        "workflow": workflow(p.workflow),
        "apps": {
            "invoicing_id": p.apps.invoicing_id,
            "invoicing_type": p.apps.invoicing_type.value,
            "payment_type": p.apps.payment_type.value,
            "draft_sync_hook": p.apps.draft_sync_hook,
            "issuing_sync_hook": p.apps.issuing_sync_hook,
        },
    }


def to_profile(doc: Doc) -> ProfileSnapshot:
    s = doc["supplier"]
    a = doc["apps"]
    return ProfileSnapshot(
        doc["id"],
        doc["name"],
        Supplier(s.get("name"), s.get("key"), s.get("tax_id"), _to_address(s.get("address"))),
        to_workflow(doc["workflow"]),
        AppSnapshot(
            a["invoicing_id"],
            AppType(a["invoicing_type"]),
            AppType(a["payment_type"]),
            bool(a["draft_sync_hook"]),
            bool(a["issuing_sync_hook"]),
        ),
    )


def issue(v: ValidationIssue) -> Doc:
    return _clean({"code": v.code, "message": v.message, "severity": v.severity.value, "field": v.field})


def to_issue(doc: Doc) -> ValidationIssue:
    return ValidationIssue(doc["code"], doc["message"], Severity(doc["severity"]), doc.get("field"))


def notice(n: Notice) -> Doc:
    return {"id": n.id, "type": n.type, "extended_status": n.extended_status}


def to_notice(doc: Doc) -> Notice:
    return Notice(doc["id"], doc["type"], doc["extended_status"])


def external_ids(x: ExternalIds) -> Doc:
    return _clean(
        {
            "invoicing": x.invoicing,
            "payment": x.payment,
            "lines": dict(x.lines) or None,
            "number": x.number,
            "hosted_url": x.hosted_url,
            "attempt": x.attempt or None,
            "events": list(x.events) or None,
        }
    )


def to_external_ids(doc: Doc) -> ExternalIds:
    return ExternalIds(
        invoicing=doc.get("invoicing"),
        payment=doc.get("payment"),
        lines=dict(doc.get("lines") or {}),
        number=doc.get("number"),
        hosted_url=doc.get("hosted_url"),
        attempt=int(doc.get("attempt", 0)),
        events=tuple(doc.get("events") or ()),
    )
