"""Credit domain objects -> the contract's JSON (`BillingCreditGrant`, `BillingCreditBalances`,
`BillingCreditTransaction`, `BillingCreditAdjustment`): decimal strings, RFC 3339, snake_case."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.api.params import Page
from shared.core.decimals import wire
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.credits.ledger import Transaction
from shared.credits.models import CreditGrant, Movement
from shared.credits.service import Balance, TransactionsPage


def grant(g: CreditGrant, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": g.id,
        "name": g.name,
        "created_at": format_rfc3339(g.created_at),
        "updated_at": format_rfc3339(g.updated_at),
        "funding_method": g.funding_method.value,
        "currency": g.currency,
        "amount": wire(g.amount),
        "priority": g.priority,
        "effective_at": format_rfc3339(g.effective_at),
        "filters": {"features": list(g.features)},
        "status": g.status(now).value,
    }
    if g.description is not None:
        body["description"] = g.description
    if g.labels is not None:
        body["labels"] = g.labels
    if g.purchase is not None:
        body["purchase"] = {
            "currency": g.purchase.currency,
            "per_unit_cost_basis": wire(g.purchase.per_unit_cost_basis),
            "amount": wire(g.purchase.amount),
            "availability_policy": g.purchase.availability_policy,
            "settlement_status": g.purchase.settlement_status.value,
        }
    if g.tax_config is not None:
        tax: dict[str, Any] = {}
        if g.tax_config.behavior is not None:
            tax["behavior"] = g.tax_config.behavior
        if g.tax_config.tax_code_id is not None:
            tax["tax_code"] = {"id": g.tax_config.tax_code_id}
        body["tax_config"] = tax
    if g.key is not None:
        body["key"] = g.key
    if g.expires_at is not None:
        body["expires_at"] = format_rfc3339(g.expires_at)
    if g.voided_at is not None:
        body["voided_at"] = format_rfc3339(g.voided_at)
    return body


def grants_page(page: Page, listed: Listed[CreditGrant], now: datetime) -> dict[str, Any]:
    return page.response([grant(g, now) for g in listed.items], listed.total)


def balances(retrieved_at: datetime, found: list[Balance]) -> dict[str, Any]:
    return {
        "retrieved_at": format_rfc3339(retrieved_at),
        "balances": [
            {
                "currency": b.currency,
                "live": wire(b.live),
                "settled": wire(b.settled),
                "pending": wire(b.pending),
            }
            for b in found
        ],
    }


def transaction(t: Transaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "created_at": format_rfc3339(t.created_at),
        "booked_at": format_rfc3339(t.booked_at),
        "type": t.type.value,
        "currency": t.currency,
        "amount": wire(t.amount),
        "available_balance": {"before": wire(t.before), "after": wire(t.after)},
    }


def _link(base: str, params: dict[str, str], size: int, cursor: tuple[str, str] | None) -> str:
    kept = [(k, v) for k, v in sorted(params.items()) if not k.startswith("page[")]
    kept.append(("page[size]", str(size)))
    if cursor is not None:
        kept.append((f"page[{cursor[0]}]", cursor[1]))
    return base + "?" + "&".join(f"{quote(k, safe='[]_')}={quote(v, safe='')}" for k, v in kept)


def transactions_page(
    customer_id: str, params: dict[str, str], size: int, page: TransactionsPage
) -> dict[str, Any]:
    base = f"/v3/openmeter/customers/{customer_id}/credits/transactions"
    return {
        "data": [transaction(t) for t in page.items],
        "meta": {
            "page": {
                "size": size,
                "first": _link(base, params, size, None),
                "next": _link(base, params, size, ("after", page.next_after)) if page.next_after else None,
                "previous": _link(base, params, size, ("before", page.previous_before))
                if page.previous_before
                else None,
            }
        },
    }


def adjustment(m: Movement) -> dict[str, Any]:
    body: dict[str, Any] = {"name": m.name}
    if m.description is not None:
        body["description"] = m.description
    if m.labels is not None:
        body["labels"] = m.labels
    return body
