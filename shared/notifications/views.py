"""Notification domain objects -> the API's JSON (v3 style: snake_case, RFC 3339, decimal strings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shared.api.params import Page
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.notifications.models import (
    Attempt,
    Channel,
    ChannelType,
    Delivery,
    NotificationEvent,
    Rule,
    RuleType,
    State,
)

T = TypeVar("T")


def channel(c: Channel, show_secret: bool = True) -> dict[str, Any]:
    """`show_secret`: signing secrets go to admins only (a viewer holding one could forge webhooks)."""
    body: dict[str, Any] = {
        "id": c.id,
        "type": c.type.value,
        "name": c.name,
        "disabled": c.disabled,
        "created_at": format_rfc3339(c.created_at),
        "updated_at": format_rfc3339(c.updated_at),
    }
    if c.type is ChannelType.WEBHOOK:
        body.update(url=c.url, custom_headers=c.custom_headers)
        if show_secret:
            body["signing_secret"] = c.signing_secret
    else:
        body["topic_arn"] = c.topic_arn
    if c.labels is not None:
        body["labels"] = c.labels
    return body


def rule(r: Rule, channels: dict[str, Channel] | None = None) -> dict[str, Any]:
    """`channels`: the rule's channels by id, to show their summaries (an unknown one shows its id)."""
    body: dict[str, Any] = {
        "id": r.id,
        "type": r.type.value,
        "name": r.name,
        "disabled": r.disabled,
        "channels": [
            channels[c].summary() if channels and c in channels else {"id": c} for c in r.channel_ids
        ],
        "created_at": format_rfc3339(r.created_at),
        "updated_at": format_rfc3339(r.updated_at),
    }
    if r.type is RuleType.BALANCE_THRESHOLD:
        body["thresholds"] = [t.to_payload() for t in r.thresholds]
    if r.type in (RuleType.BALANCE_THRESHOLD, RuleType.ENTITLEMENT_RESET) and r.features:
        body["features"] = list(r.features)
    if r.labels is not None:
        body["labels"] = r.labels
    return body


def attempt(a: Attempt) -> dict[str, Any]:
    response: dict[str, Any] = {"status_code": a.status_code, "duration_ms": a.duration_ms}
    if a.body:
        response["body"] = a.body
    if a.url:
        response["url"] = a.url
    return {"state": a.state, "timestamp": format_rfc3339(a.timestamp), "response": response}


def delivery(d: Delivery) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": d.channel,
        "state": d.state,
        "updated_at": format_rfc3339(d.updated_at),
        "attempts": [attempt(a) for a in d.attempts],
    }
    if d.reason:
        body["reason"] = d.reason
    if d.next_attempt is not None and d.state in (State.PENDING, State.SENDING):
        body["next_attempt"] = format_rfc3339(d.next_attempt)
    return body


def event(e: NotificationEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "type": e.type,
        "created_at": format_rfc3339(e.created_at),
        "rule": e.rule,
        "annotations": e.annotations,
        "payload": e.payload,
        "delivery_status": [delivery(d) for d in e.deliveries],
    }


def page(page: Page, listed: Listed[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return page.response([render(i) for i in listed.items], listed.total)
