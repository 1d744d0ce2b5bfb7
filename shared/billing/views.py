"""Billing domain objects rendered as the contract's JSON (`BillingApp`, `BillingProfile`,
`BillingCustomerData`, `BillingAppCustomerData`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shared.api.params import Page
from shared.billing.models import (
    AlignmentType,
    App,
    AppData,
    CollectionMethod,
    CustomerBilling,
    Profile,
    Supplier,
    Workflow,
)
from shared.billing.stripe_account import PortalSession
from shared.core.listing import Listed
from shared.core.timeutil import format_optional, format_rfc3339

T = TypeVar("T")


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def page(page: Page, listed: Listed[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return page.response([render(i) for i in listed.items], listed.total)


def app(a: App) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "type": a.type.value,
        "definition": {"type": a.type.value, "name": a.name, "description": a.description},
        "status": a.status.value,
        "created_at": format_rfc3339(a.created_at),
        "updated_at": format_rfc3339(a.updated_at),
    }
    if a.type.value == "stripe":
        body["account_id"] = a.account_id
        body["livemode"] = a.livemode
        body["masked_api_key"] = a.masked_api_key
    if a.type.value == "external_invoicing":
        body["enable_draft_sync_hook"] = a.enable_draft_sync_hook
        body["enable_issuing_sync_hook"] = a.enable_issuing_sync_hook
    return body


def _supplier(s: Supplier) -> dict[str, Any]:
    body = _drop_none({"key": s.key, "name": s.name})
    if s.tax_id is not None:
        body["tax_id"] = {"code": s.tax_id}
    if s.address is not None:
        body["addresses"] = {"billing_address": _drop_none(vars(s.address))}
    return body


def _workflow(w: Workflow) -> dict[str, Any]:
    alignment: dict[str, Any] = {"type": w.alignment.type.value}
    if w.alignment.type is AlignmentType.ANCHORED:
        alignment["recurring_period"] = {
            "anchor": format_optional(w.alignment.anchor),
            "interval": w.alignment.interval,
        }
    payment: dict[str, Any] = {"collection_method": w.collection_method.value}
    if w.collection_method is CollectionMethod.SEND_INVOICE:
        payment["due_after"] = w.due_after
    tax: dict[str, Any] = {"enabled": w.tax_enabled, "enforced": w.tax_enforced}
    if w.tax_behavior is not None:
        tax["default_tax_config"] = {"behavior": w.tax_behavior.value}
    return {
        "collection": {"alignment": alignment, "interval": w.collection_interval},
        "invoicing": {
            "auto_advance": w.auto_advance,
            "draft_period": w.draft_period,
            "progressive_billing": w.progressive_billing,
            "subscription_end_proration_mode": w.proration_mode.value,
        },
        "payment": payment,
        "tax": tax,
    }


def profile(p: Profile) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "created_at": format_rfc3339(p.created_at),
        "updated_at": format_rfc3339(p.updated_at),
        "supplier": _supplier(p.supplier),
        "workflow": _workflow(p.workflow),
        "apps": {
            "tax": {"id": p.apps.tax},
            "invoicing": {"id": p.apps.invoicing},
            "payment": {"id": p.apps.payment},
        },
        "default": p.default,
    }
    if p.description is not None:
        body["description"] = p.description
    if p.labels is not None:
        body["labels"] = p.labels
    return body


def app_data(d: AppData) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if d.stripe is not None:
        body["stripe"] = _drop_none(vars(d.stripe))
    if d.external_invoicing is not None:
        body["external_invoicing"] = _drop_none(vars(d.external_invoicing))
    return body


def customer_billing(b: CustomerBilling) -> dict[str, Any]:
    body: dict[str, Any] = {"app_data": app_data(b.app_data)}
    if b.profile_id is not None:
        body["billing_profile"] = {"id": b.profile_id}
    return body


def portal_session(s: PortalSession) -> dict[str, Any]:
    # The contract requires `return_url` and `locale`; Stripe leaves them null when not set (no
    # return link; the customer's own locale), shown as "".
    return {
        "id": s.id,
        "stripe_customer_id": s.stripe_customer_id,
        "configuration_id": s.configuration_id,
        "livemode": s.livemode,
        "created_at": format_rfc3339(s.created_at),
        "return_url": s.return_url or "",
        "locale": s.locale or "",
        "url": s.url,
    }
