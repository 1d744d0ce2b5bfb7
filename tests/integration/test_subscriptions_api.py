"""Subscriptions over the API (engine-rules §2.8, product.md §11): create, get, list, cancel,
unschedule-cancelation and change; one subscription per customer at a time; bad input names its
field and writes nothing. The subscription clock is a `MovableClock` set in 2027 (after the wall
clock, so plans published on it are active)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from shared import bootstrap
from shared.subscriptions.models import ONLY_SINGLE_SUBSCRIPTION
from tests.support.catalog import UNKNOWN
from tests.support.harness import Stack
from tests.support.problems import problem
from tests.support.subscriptions import MovableClock, customer, d, install_clock, published_plan, subscribe

T0 = d("2027-03-10T12:00:00Z")


@pytest.fixture
def clock(stack: Stack) -> MovableClock:
    return install_clock(T0 - timedelta(days=1))  # plans are published the day before


def listed(stack: Stack, query: str = "") -> list[dict[str, Any]]:
    resp = stack.request("GET", "/subscriptions" + query)
    assert resp.status == 200, resp
    return resp.json()["data"]


def test_create_get_and_list(stack: Stack, clock: MovableClock) -> None:
    plan = published_plan(stack)
    published_plan(stack, "basic")
    a, b = customer(stack, "acme"), customer(stack, "globex")
    clock.at = T0
    created = subscribe(stack, a["id"])
    assert created.status == 201, created
    sub = created.json()
    assert sub["customer_id"] == a["id"] and sub["plan_id"] == plan["id"]
    assert sub["status"] == "active"
    assert sub["billing_anchor"] == "2027-03-10T12:00:00Z"  # anniversary: the start
    assert sub["settlement_mode"] == "credit_then_invoice"
    got = stack.request("GET", f"/subscriptions/{sub['id']}")
    assert got.status == 200 and got.json() == sub
    other = subscribe(stack, b["id"], "basic", labels={"tier": "b"}, customer={"key": "globex"})
    assert other.status == 201, other
    assert [s["id"] for s in listed(stack)] == [sub["id"], other.json()["id"]]
    assert [s["id"] for s in listed(stack, f"?filter[customer_id]={b['id']}")] == [other.json()["id"]]
    assert [s["id"] for s in listed(stack, "?filter[plan_key]=pro")] == [sub["id"]]
    assert [s["id"] for s in listed(stack, "?sort=active_from desc")] == [other.json()["id"], sub["id"]]
    assert listed(stack, "?filter[status]=scheduled") == []
    page = stack.request("GET", "/subscriptions?page[size]=1&page[number]=2").json()
    assert page["meta"]["page"] == {"number": 2, "size": 1, "total": 2}
    assert [s["id"] for s in page["data"]] == [other.json()["id"]]
    problem(stack.request("GET", f"/subscriptions/{UNKNOWN}"), 404)
    problem(stack.request("GET", "/subscriptions/nope"), 400, "subscriptionId")
    problem(stack.request("GET", "/subscriptions?filter[status]=gone"), 400, "filter[status][eq]")
    problem(stack.request("GET", "/subscriptions?sort=name"), 400, "sort")


def test_billing_anchor_is_normalised_and_keeps_its_month_end(stack: Stack, clock: MovableClock) -> None:
    published_plan(stack)
    a = customer(stack)
    clock.at = T0  # 2027-03-10
    sub = subscribe(stack, a["id"], billing_anchor="2027-01-31T00:00:00Z")
    assert sub.status == 201, sub
    # The last recurrence of Jan 31 at or before Mar 10 is Feb 28 (2027 is not a leap year)...
    assert sub.json()["billing_anchor"] == "2027-02-28T00:00:00Z"
    # ...yet the cycle is still the 31st's: cancelling at the next cycle ends on Mar 31, not Mar 28.
    canceled = stack.request(
        "POST", f"/subscriptions/{sub.json()['id']}/cancel", {"timing": "next_billing_cycle"}
    )
    assert canceled.status == 200, canceled
    stored = bootstrap.subscriptions().get(sub.json()["id"])
    assert stored.active_to == d("2027-03-31T00:00:00Z")


def test_one_subscription_per_customer(stack: Stack, clock: MovableClock) -> None:
    published_plan(stack)
    a = customer(stack)
    clock.at = T0
    first = subscribe(stack, a["id"])
    assert first.status == 201
    again = problem(subscribe(stack, a["id"]), 409)
    assert again["code"] == ONLY_SINGLE_SUBSCRIPTION
    assert again["conflicting_entity_id"] == first.json()["id"]
    later = subscribe(stack, a["id"], timing="2027-06-01T00:00:00Z")
    assert problem(later, 409)["code"] == ONLY_SINGLE_SUBSCRIPTION  # the first one never ends
    assert len(listed(stack)) == 1


def test_a_create_that_loses_the_race_rereads_and_gets_409(
    stack: Stack, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic interleaving: the competing create commits between this create's read of the
    timeline and its write, so only the conditional write can stop the second subscription."""
    published_plan(stack)
    a = customer(stack)
    clock.at = T0
    repo = bootstrap.subscriptions().repo
    real_save = repo.save
    raced: list[Any] = []

    def save(*args: Any) -> int:
        if not raced:
            raced.append(None)
            raced.append(subscribe(stack, a["id"]))  # the other request wins
        return real_save(*args)

    monkeypatch.setattr(repo, "save", save)
    lost = subscribe(stack, a["id"])
    assert raced[1].status == 201, raced[1]
    assert problem(lost, 409)["code"] == ONLY_SINGLE_SUBSCRIPTION
    assert [s["id"] for s in listed(stack)] == [raced[1].json()["id"]]


def test_two_concurrent_creates_yield_one_201_and_one_409(stack: Stack, clock: MovableClock) -> None:
    published_plan(stack)
    a = customer(stack)
    clock.at = T0
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def create() -> None:
        barrier.wait()
        results.append(subscribe(stack, a["id"]))

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == [201, 409], results
    assert problem(next(r for r in results if r.status == 409), 409)["code"] == ONLY_SINGLE_SUBSCRIPTION
    assert len(listed(stack)) == 1


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda c, p: {"customer": {"id": UNKNOWN}, "plan": {"key": "pro"}}, "customer.id"),
        (lambda c, p: {"customer": {"key": "nobody"}, "plan": {"key": "pro"}}, "customer.key"),
        (lambda c, p: {"customer": {"id": c}, "plan": {"key": "nope"}}, "plan.key"),
        (lambda c, p: {"customer": {"id": c}, "plan": {"id": UNKNOWN}}, "plan.id"),
        (lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro", "version": 7}}, "plan.version"),
        (lambda c, p: {"customer": {"id": c}, "plan": {"id": p["draft"]}}, "plan.id"),
        (lambda c, p: {"customer": {"id": c}, "plan": {"key": "draft_only"}}, "plan.key"),
        (lambda c, p: {"customer": {"id": p["eur"]}, "plan": {"key": "pro"}}, "plan.key"),
        (
            lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro"}, "timing": "2027-03-09T00:00:00Z"},
            "timing",
        ),
        (
            lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro"}, "timing": "next_billing_cycle"},
            "timing",
        ),
        (lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro"}, "timing": "soon"}, "timing"),
        (
            lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro"}, "timing": "9999-12-31T00:00:00Z"},
            "timing",
        ),
        (
            lambda c, p: {
                "customer": {"id": c},
                "plan": {"key": "pro"},
                "billing_anchor": "1900-01-01T00:00:00Z",
            },
            "billing_anchor",
        ),
        (lambda c, p: {"customer": {}, "plan": {"key": "pro"}}, "customer.id"),
        (lambda c, p: {"customer": {"id": c}, "plan": {}}, "plan.key"),
        (
            lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro"}, "billing_anchor": "monday"},
            "billing_anchor",
        ),
        (lambda c, p: {"customer": {"id": c}, "plan": {"key": "pro"}, "extra": 1}, "extra"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    stack: Stack, clock: MovableClock, make: Any, field: str
) -> None:
    published_plan(stack)
    draft = stack.request("POST", "/plans", {**_body("pro"), "name": "Pro v2"}).json()
    stack.request("POST", "/plans", _body("draft_only"))
    c = customer(stack)
    eur = customer(stack, "eurco", currency="EUR")
    clock.at = T0
    problem(
        stack.request("POST", "/subscriptions", make(c["id"], {"draft": draft["id"], "eur": eur["id"]})),
        400,
        field,
    )
    assert listed(stack) == []
    assert bootstrap.subscriptions().repo.timeline(c["id"]) == ([], 0)


def _body(key: str) -> dict[str, Any]:
    from tests.support.catalog import plan_body

    return plan_body(key)


def test_cancel_and_unschedule(stack: Stack, clock: MovableClock) -> None:
    published_plan(stack)
    a = customer(stack)
    clock.at = T0
    sub = subscribe(stack, a["id"], billing_anchor="2027-03-01T00:00:00Z").json()
    path = f"/subscriptions/{sub['id']}"
    # A cancel time must be in the future and on a billing period boundary.
    problem(stack.request("POST", path + "/cancel", {"timing": "2027-04-15T00:00:00Z"}), 400, "timing")
    problem(stack.request("POST", path + "/cancel", {"timing": "2027-03-01T00:00:00Z"}), 400, "timing")
    problem(stack.request("POST", path + "/cancel", {"timing": "later"}), 400, "timing")
    problem(stack.request("POST", path + "/unschedule-cancelation"), 409)  # nothing scheduled
    canceled = stack.request("POST", path + "/cancel", {"timing": "2027-05-01T00:00:00Z"})
    assert canceled.status == 200 and canceled.json()["status"] == "canceled", canceled
    # Another subscription may follow the canceled one...
    follower = subscribe(stack, a["id"], timing="2027-05-01T00:00:00Z")
    assert follower.status == 201 and follower.json()["status"] == "scheduled", follower
    # ...and then neither unscheduling nor re-cancelling the first is allowed (409).
    problem(stack.request("POST", path + "/unschedule-cancelation"), 409)
    problem(stack.request("POST", path + "/cancel", {"timing": "next_billing_cycle"}), 409)
    # Cancel the follower before it starts (immediately: it never runs), then continue the first.
    gone = stack.request("POST", f"/subscriptions/{follower.json()['id']}/cancel")
    assert gone.status == 200 and gone.json()["status"] == "inactive", gone
    resumed = stack.request("POST", path + "/unschedule-cancelation")
    assert resumed.status == 200 and resumed.json()["status"] == "active", resumed
    now = stack.request("POST", path + "/cancel", {})
    assert now.status == 200 and now.json()["status"] == "inactive", now
    problem(stack.request("POST", path + "/cancel"), 409)  # already ended
    problem(stack.request("POST", f"/subscriptions/{UNKNOWN}/cancel"), 404)


def test_change_returns_current_and_next(stack: Stack, clock: MovableClock) -> None:
    published_plan(stack)
    premium = published_plan(stack, "premium")
    a = customer(stack)
    clock.at = T0
    sub = subscribe(stack, a["id"], billing_anchor="2027-03-01T00:00:00Z").json()
    body = {"customer": {"id": a["id"]}, "plan": {"key": "premium"}, "timing": "next_billing_cycle"}
    changed = stack.request("POST", f"/subscriptions/{sub['id']}/change", body)
    assert changed.status == 200, changed
    current, nxt = changed.json()["current"], changed.json()["next"]
    assert current["id"] == sub["id"] and current["status"] == "canceled"
    assert nxt["plan_id"] == premium["id"] and nxt["status"] == "scheduled"
    assert nxt["billing_anchor"] == "2027-04-01T00:00:00Z"  # the previous anchor, at the change
    assert bootstrap.subscriptions().get(nxt["id"]).active_from == d("2027-04-01T00:00:00Z")
    # The scheduled next one blocks a second change of the first (409), and a change of the next one
    # needs `timing` (400) and the right customer (400).
    problem(stack.request("POST", f"/subscriptions/{sub['id']}/change", body), 409)
    problem(
        stack.request("POST", f"/subscriptions/{nxt['id']}/change", {**body, "timing": None}), 400, "timing"
    )
    other = customer(stack, "other")
    wrong = {**body, "customer": {"id": other["id"]}, "timing": "immediate"}
    problem(stack.request("POST", f"/subscriptions/{nxt['id']}/change", wrong), 400, "customer.id")
    # Time passes: the switch happened; an immediate change now ends the running one now.
    clock.at = d("2027-04-10T00:00:00Z")
    now = stack.request(
        "POST", f"/subscriptions/{nxt['id']}/change", {**body, "plan": {"key": "pro"}, "timing": "immediate"}
    )
    assert now.status == 200, now
    assert now.json()["current"]["status"] == "inactive" and now.json()["next"]["status"] == "active"
    assert [s["status"] for s in listed(stack)] == ["inactive", "inactive", "active"]
