"""Subscriptions in the contract's JSON: `BillingSubscription`, its page, the change response."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.api.params import Page
from shared.catalog import views as catalog_views
from shared.catalog.models import Addon
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.subscriptions.models import ChangeResult, Subscription, SubscriptionAddon


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


def subscription_addon(
    a: SubscriptionAddon, addon: Addon | None, sub: Subscription, now: datetime
) -> dict[str, Any]:
    quantity, quantity_at = a.shown_at(now)
    ends = [s.start for s in a.segments[1:]] + [sub.active_to]
    timeline = []
    for seg, end in zip(a.segments, ends, strict=True):
        item: dict[str, Any] = {"active_from": format_rfc3339(seg.start), "quantity": seg.quantity}
        if end is not None:
            item["active_to"] = format_rfc3339(end)
        timeline.append(item)
    # The add-on ends where its quantity last dropped to 0, else with the subscription.
    active_to = a.segments[-1].start if a.segments[-1].quantity == 0 else sub.active_to
    out: dict[str, Any] = {
        "id": a.id,
        "created_at": format_rfc3339(a.created_at),
        "updated_at": format_rfc3339(a.updated_at),
        "name": a.name,
        "addon": {"id": a.addon_id},
        "quantity": quantity,
        "quantity_at": format_rfc3339(quantity_at),
        "active_from": format_rfc3339(a.segments[0].start),
        "timeline": timeline,
        "rate_cards": [
            {"rate_card": catalog_views.rate_card(rc), "affected_subscription_item_ids": []}
            for rc in (addon.rate_cards if addon else ())
        ],
    }
    if active_to is not None:
        out["active_to"] = format_rfc3339(active_to)
    if a.description is not None:
        out["description"] = a.description
    if a.labels is not None:
        out["labels"] = a.labels
    return out
