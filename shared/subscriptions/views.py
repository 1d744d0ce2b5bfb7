"""Subscriptions in the contract's JSON: `BillingSubscription`, its page, the change response."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.api.params import Page
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.subscriptions.models import ChangeResult, Subscription


def subscription(s: Subscription, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id,
        "created_at": format_rfc3339(s.created_at),
        "updated_at": format_rfc3339(s.updated_at),
        "customer_id": s.customer_id,
        "plan_id": s.plan_id,
        "billing_anchor": format_rfc3339(s.billing_anchor),
        "status": s.status(now).value,
        "settlement_mode": s.settlement_mode.value,
    }
    if s.labels is not None:
        out["labels"] = s.labels
    return out


def page(
    query_page: Page, listed: Listed[Subscription], now_for: Callable[[str], datetime]
) -> dict[str, Any]:
    return query_page.response([subscription(s, now_for(s.customer_id)) for s in listed.items], listed.total)


def change(result: ChangeResult, now: datetime) -> dict[str, Any]:
    return {"current": subscription(result.current, now), "next": subscription(result.next, now)}
