"""Entitlement domain objects -> the API's JSON (v3 style: snake_case, decimal strings, RFC 3339).

The only module that knows the response shapes; the use cases return domain objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from shared.api.params import Page
from shared.core.decimals import wire
from shared.core.listing import Listed
from shared.core.timeutil import format_optional, format_rfc3339
from shared.entitlements import engine
from shared.entitlements.access import AccessState
from shared.entitlements.models import (
    CurrentEntitlement,
    CurrentGrant,
    EntitlementType,
    History,
    Period,
    PlainAccess,
)

T = TypeVar("T")


def _period(p: Period) -> dict[str, str]:
    return {"from": format_rfc3339(p[0]), "to": format_rfc3339(p[1])}


def entitlement(current: CurrentEntitlement) -> dict[str, Any]:
    ent = current.entitlement
    body: dict[str, Any] = {
        "id": ent.id,
        "type": ent.type.value,
        "customer_id": ent.customer_id,
        "feature_id": ent.feature_id,
        "feature_key": ent.feature_key,
        "created_at": format_rfc3339(ent.created_at),
        "updated_at": format_rfc3339(ent.updated_at),
    }
    if ent.metadata is not None:
        body["metadata"] = ent.metadata
    if ent.deleted_at is not None:
        body["deleted_at"] = format_rfc3339(ent.deleted_at)
    if ent.type == EntitlementType.STATIC:
        body["config"] = ent.config
    if ent.type == EntitlementType.METERED:
        body.update(
            {
                "is_soft_limit": ent.is_soft_limit,
                "preserve_overage_at_reset": ent.preserve_overage_at_reset,
                "measure_usage_from": format_optional(ent.measure_usage_from),
                "usage_period": {
                    "interval": ent.usage_period_interval,
                    "anchor": format_optional(ent.usage_period_anchor),
                },
                "issue": {"amount": wire(ent.issue_after_reset), "priority": ent.issue_after_reset_priority}
                if ent.issue_after_reset is not None
                else None,
            }
        )
        if current.usage_period is not None:
            body["current_usage_period"] = _period(current.usage_period)
            body["last_reset"] = format_rfc3339(current.usage_period[0])
    return body


def grant(current: CurrentGrant) -> dict[str, Any]:
    g = current.grant
    body: dict[str, Any] = {
        "id": g.id,
        "entitlement_id": g.entitlement_id,
        "amount": wire(g.amount),
        "priority": g.priority,
        "effective_at": format_rfc3339(g.effective_at),
        "expires_at": format_optional(g.expires_at),
        "min_rollover_amount": wire(g.min_rollover_amount),
        "max_rollover_amount": wire(g.max_rollover_amount if g.max_rollover_amount is not None else g.amount),
        "recurrence": {
            "interval": g.recurrence_interval,
            "anchor": format_optional(g.recurrence_anchor or g.effective_at),
        }
        if g.recurrence_interval
        else None,
        "voided_at": format_optional(g.voided_at),
        "created_at": format_rfc3339(g.created_at),
        "annotations": g.annotations or {},
    }
    if g.metadata is not None:
        body["metadata"] = g.metadata
    if current.next_recurrence is not None:
        body["next_recurrence"] = format_rfc3339(current.next_recurrence)
    return body


def value(v: engine.Value | PlainAccess) -> dict[str, Any]:
    if isinstance(v, PlainAccess):
        body: dict[str, Any] = {"has_access": v.has_access}
        if v.config is not None:
            body["config"] = orjson.dumps(v.config).decode()  # the v1 shape: a JSON string
        return body
    return {
        "has_access": v.has_access,
        "balance": wire(v.balance),
        "usage": wire(v.usage),
        "overage": wire(v.overage),
        "total_available_grant_amount": wire(v.total_available_grant_amount),
        "grant_balances": {k: wire(b) for k, b in v.grant_balances.items()},
        "current_usage_period": _period(v.current_period),
        "last_reset": format_optional(v.last_reset),
    }


def history(h: History) -> dict[str, Any]:
    return {
        "windowed_history": [
            {
                "period": _period(w.period),
                "usage": wire(w.usage),
                "balance_at_start": wire(w.balance_at_start),
            }
            for w in h.windows
        ],
        "burndown_history": [
            {
                "period": _period((s.start, s.end)),
                "usage": wire(s.usage),
                "overage": wire(s.overage),
                "balance_at_start": wire(s.balance_at_start),
                "grant_balances_at_start": {k: wire(v) for k, v in s.grant_balances_at_start.items()},
                "balance_at_end": wire(s.balance_at_end),
                "grant_balances_at_end": {k: wire(v) for k, v in s.grant_balances_at_end.items()},
                "grant_usages": [{"grant_id": k, "usage": wire(v)} for k, v in s.grant_usages.items()],
            }
            for s in h.segments
        ],
    }


def access_row(state: AccessState) -> dict[str, Any]:
    row: dict[str, Any] = {
        "type": state.type,
        "feature_key": state.feature_key,
        "has_access": state.has_access,
    }
    if state.type == "static" and state.config is not None:
        row["config"] = state.config
    return row


def access(states: Sequence[AccessState]) -> dict[str, Any]:
    return {"data": [access_row(s) for s in states]}


def page(page: Page, listed: Listed[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return page.response([render(i) for i in listed.items], listed.total)
