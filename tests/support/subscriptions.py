"""Builders for subscription tests: a movable clock for the subscription (and plan) services, published
plans and customers. The subscription service reads each customer's now through `now_for`; tests point
it at a `MovableClock` (the lead's test clocks plug in at the same seam)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared import bootstrap
from tests.support.catalog import flat_card, plan_body
from tests.support.harness import Stack


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def now_for(self, _customer_id: str) -> datetime:
        return self.at


def install_clock(at: datetime) -> MovableClock:
    """Subscriptions and plans (publish sets `effective_from`) run on a clock the test moves."""
    clock = MovableClock(at)
    bootstrap.subscriptions().now_for = clock.now_for
    bootstrap.plans().clock = clock  # type: ignore[assignment]
    return clock


def d(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def published_plan(stack: Stack, key: str = "pro", **extra: Any) -> dict[str, Any]:
    created = stack.request("POST", "/plans", plan_body(key, **extra))
    assert created.status == 201, created
    published = stack.request("POST", f"/plans/{created.json()['id']}/publish")
    assert published.status == 200, published
    return published.json()


def customer(stack: Stack, key: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {"key": key, "name": key.title(), "usage_attribution": {"subject_keys": [f"{key}-a"]}, **extra}
    resp = stack.request("POST", "/customers", body)
    assert resp.status == 201, resp
    return resp.json()


def subscribe(stack: Stack, customer_id: str, plan_key: str = "pro", **extra: Any) -> Any:
    return stack.request(
        "POST", "/subscriptions", {"customer": {"id": customer_id}, "plan": {"key": plan_key}, **extra}
    )


__all__ = ["MovableClock", "customer", "d", "flat_card", "install_clock", "published_plan", "subscribe"]
