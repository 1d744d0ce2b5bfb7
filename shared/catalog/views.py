"""Catalog domain objects in the contract's JSON shapes (amounts as decimal strings)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.catalog.models import (
    Addon,
    DefaultTaxCodes,
    EntitlementTemplate,
    EntitlementType,
    Phase,
    Plan,
    PlanAddon,
    Price,
    PriceType,
    RateCard,
    TaxCode,
    ValidationIssue,
)
from shared.core.decimals import wire
from shared.core.timeutil import format_rfc3339


def _number(value: Decimal) -> int | float:
    """Contract `number` fields (limit, percentage): an int when whole."""
    return int(value) if value == value.to_integral_value() else float(value)


def _common(body: dict[str, Any], obj: Any) -> dict[str, Any]:
    if obj.description is not None:
        body["description"] = obj.description
    if obj.labels is not None:
        body["labels"] = obj.labels
    return body


def _times(body: dict[str, Any], obj: Any, *names: str) -> dict[str, Any]:
    for name in names:
        value: datetime | None = getattr(obj, name)
        if value is not None:
            body[name] = format_rfc3339(value)
    return body


def price(p: Price) -> dict[str, Any]:
    if p.type is PriceType.FREE:
        return {"type": "free"}
    if p.type in (PriceType.FLAT, PriceType.UNIT):
        return {"type": p.type.value, "amount": wire(p.amount or Decimal(0))}
    tiers = []
    for t in p.tiers:
        tier: dict[str, Any] = {}
        if t.up_to is not None:
            tier["up_to_amount"] = wire(t.up_to)
        if t.flat is not None:
            tier["flat_price"] = {"type": "flat", "amount": wire(t.flat)}
        if t.unit is not None:
            tier["unit_price"] = {"type": "unit", "amount": wire(t.unit)}
        tiers.append(tier)
    return {"type": p.type.value, "tiers": tiers}


def entitlement(e: EntitlementTemplate) -> dict[str, Any]:
    body: dict[str, Any] = {"type": e.type.value}
    if e.type is EntitlementType.METERED:
        body["is_soft_limit"] = e.is_soft_limit
        if e.limit is not None:
            body["limit"] = _number(e.limit)
        if e.usage_period is not None:
            body["usage_period"] = e.usage_period
    elif e.type is EntitlementType.STATIC:
        body["config"] = e.config
    return body


def rate_card(rc: RateCard) -> dict[str, Any]:
    body = _common({"key": rc.key, "name": rc.name}, rc)
    if rc.feature_id is not None:
        body["feature"] = {"id": rc.feature_id}
    if rc.billing_cadence is not None:
        body["billing_cadence"] = rc.billing_cadence
    body["price"] = price(rc.price)
    body["payment_term"] = rc.payment_term.value
    if rc.unit_config is not None:
        uc = rc.unit_config
        body["unit_config"] = {
            "operation": uc.operation.value,
            "conversion_factor": wire(uc.conversion_factor),
            "rounding": uc.rounding.value,
            "precision": uc.precision,
        }
        if uc.display_unit is not None:
            body["unit_config"]["display_unit"] = uc.display_unit
    if rc.commitments is not None:
        c: dict[str, Any] = {}
        if rc.commitments.minimum is not None:
            c["minimum_amount"] = wire(rc.commitments.minimum)
        if rc.commitments.maximum is not None:
            c["maximum_amount"] = wire(rc.commitments.maximum)
        body["commitments"] = c
    if rc.discounts is not None:
        d: dict[str, Any] = {}
        if rc.discounts.percentage is not None:
            d["percentage"] = _number(rc.discounts.percentage)
        if rc.discounts.usage is not None:
            d["usage"] = wire(rc.discounts.usage)
        body["discounts"] = d
    if rc.tax_config is not None:
        body["tax_config"] = {"code": {"id": rc.tax_config.code_id}}
        if rc.tax_config.behavior is not None:
            body["tax_config"]["behavior"] = rc.tax_config.behavior.value
    if rc.entitlement is not None:
        body["entitlement"] = entitlement(rc.entitlement)
    return body


def phase(p: Phase) -> dict[str, Any]:
    body = _common({"key": p.key, "name": p.name}, p)
    if p.duration is not None:
        body["duration"] = p.duration
    body["rate_cards"] = [rate_card(rc) for rc in p.rate_cards]
    return body


def validation_issue(v: ValidationIssue) -> dict[str, Any]:
    body: dict[str, Any] = {"code": v.code, "message": v.message, "field": v.field}
    if v.attributes:
        body["attributes"] = v.attributes
    return body


def plan(p: Plan, now: datetime) -> dict[str, Any]:
    body = _common({"id": p.id, "key": p.key, "version": p.version, "name": p.name}, p)
    body.update(
        currency=p.currency,
        billing_cadence=p.billing_cadence,
        pro_rating_enabled=p.pro_rating_enabled,
        settlement_mode=p.settlement_mode,
        status=p.status(now).value,
        phases=[phase(x) for x in p.phases],
        validation_errors=[validation_issue(v) for v in p.validation_errors],
    )
    return _times(body, p, "effective_from", "effective_to", "created_at", "updated_at", "deleted_at")


def addon(a: Addon, now: datetime) -> dict[str, Any]:
    body = _common({"id": a.id, "key": a.key, "version": a.version, "name": a.name}, a)
    # The add-on status enum has no `scheduled`: a future effective_from can't happen (publish is now).
    body.update(
        instance_type=a.instance_type.value,
        currency=a.currency,
        status=a.status(now).value,
        rate_cards=[rate_card(rc) for rc in a.rate_cards],
        validation_errors=[validation_issue(v) for v in a.validation_errors],
    )
    return _times(body, a, "effective_from", "effective_to", "created_at", "updated_at", "deleted_at")


def plan_addon(link: PlanAddon) -> dict[str, Any]:
    body = _common({"id": link.id, "name": link.name}, link)
    body.update(addon={"id": link.addon_id}, from_plan_phase=link.from_plan_phase)
    if link.max_quantity is not None:
        body["max_quantity"] = link.max_quantity
    body["validation_errors"] = [validation_issue(v) for v in link.validation_errors]
    return _times(body, link, "created_at", "updated_at", "deleted_at")


def tax_code(t: TaxCode) -> dict[str, Any]:
    body = _common({"id": t.id, "key": t.key, "name": t.name}, t)
    body["app_mappings"] = [{"app_type": m.app_type.value, "tax_code": m.tax_code} for m in t.app_mappings]
    return _times(body, t, "created_at", "updated_at", "deleted_at")


def default_tax_codes(d: DefaultTaxCodes) -> dict[str, Any]:
    return {
        "invoicing_tax_code": {"id": d.invoicing_id},
        "credit_grant_tax_code": {"id": d.credit_grant_id},
        "created_at": format_rfc3339(d.created_at),
        "updated_at": format_rfc3339(d.updated_at),
    }
