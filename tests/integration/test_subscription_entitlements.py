"""Entitlements from the catalog (engine-rules §2.8): a subscription item with an entitlement template
materialises the customer's entitlement through the EntitlementService, with the usage period of the
item's cadence anchored to the billing anchor and `measure_usage_from` = the item's start; phases
advance with `run_due`, idempotently; grants can be added to a subscription-managed entitlement; an
immediate upgrade keeps the usage already measured in the current period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from functions.rate import handler as rate
from shared import bootstrap
from shared.core.timeutil import floor_minute, format_rfc3339
from tests.support.catalog import features, full_phases, usage_card
from tests.support.harness import Stack
from tests.support.problems import problem
from tests.support.subscriptions import customer, d, install_clock, published_plan, subscribe


def entitlements(stack: Stack, customer_id: str) -> dict[str, dict[str, Any]]:
    """The customer's live entitlements by feature key."""
    resp = stack.request("GET", f"/customers/{customer_id}/entitlements?page[size]=100")
    assert resp.status == 200, resp
    return {e["feature_key"]: e for e in resp.json()["data"] if "deleted_at" not in e}


def test_phases_materialise_their_entitlements_on_time_and_idempotently(stack: Stack) -> None:
    clock = install_clock(d("2027-03-09T00:00:00Z"))
    f = features(stack)
    published_plan(stack, phases=full_phases(f))  # trial P14D (sso boolean), then paid (tokens, sso)
    a = customer(stack)
    clock.at = d("2027-03-10T12:00:00Z")
    sub = subscribe(stack, a["id"], billing_anchor="2027-03-01T00:00:00Z")
    assert sub.status == 201, sub
    sub_id = sub.json()["id"]
    svc = bootstrap.subscriptions()

    trial = entitlements(stack, a["id"])
    assert {k: v["type"] for k, v in trial.items()} == {"sso": "boolean"}
    assert trial["sso"]["metadata"] == {"subscription_id": sub_id, "item": "sso"}

    assert svc.run_due([a["id"]], d("2027-03-24T11:59:00Z")) == 0  # the trial runs 14 days
    assert svc.run_due([a["id"]], d("2027-03-24T12:00:00Z")) == 1
    paid = entitlements(stack, a["id"])
    assert {k: v["type"] for k, v in paid.items()} == {"tokens": "metered", "sso": "static"}
    tokens = paid["tokens"]
    assert tokens["measure_usage_from"] == "2027-03-24T12:00:00Z"  # the paid phase's start
    assert tokens["usage_period"] == {
        "interval": "P1M",
        "anchor": "2027-03-01T00:00:00Z",
    }  # the billing anchor
    assert Decimal(tokens["issue"]["amount"]) == Decimal(1000000)  # the template's limit per period
    assert paid["sso"]["config"] == {"saml": True}
    assert paid["sso"]["id"] != trial["sso"]["id"]  # the trial's boolean one was ended

    # Running it again (or for an earlier instant) changes nothing.
    assert svc.run_due([a["id"]], d("2027-03-24T12:00:00Z")) == 0
    assert svc.run_due([a["id"], a["id"]], d("2027-03-25T00:00:00Z")) == 0
    assert svc.run_due([a["id"]], d("2027-03-11T00:00:00Z")) == 0  # an earlier instant undoes nothing
    assert entitlements(stack, a["id"]) == paid

    # A grant on the subscription-managed entitlement (OpenMeter #3293).
    grant = stack.request(
        "POST",
        f"/customers/{a['id']}/entitlements/{tokens['id']}/grants",
        {"amount": 500, "effective_at": "2027-03-25T00:00:00Z", "priority": 1},
    )
    assert grant.status == 201, grant

    # Cancelled at the next cycle: at the end the entitlements go.
    clock.at = d("2027-03-26T00:00:00Z")
    stack.request("POST", f"/subscriptions/{sub_id}/cancel", {"timing": "next_billing_cycle"})
    assert svc.run_due([a["id"]], d("2027-03-31T23:59:00Z")) == 0
    assert svc.run_due([a["id"]], d("2027-04-01T00:00:00Z")) == 1
    assert entitlements(stack, a["id"]) == {}
    assert svc.run_due([a["id"]], d("2027-05-01T00:00:00Z")) == 0


def test_a_subscription_does_not_take_over_an_entitlement_made_by_hand(stack: Stack) -> None:
    clock = install_clock(d("2027-03-09T00:00:00Z"))
    f = features(stack)
    published_plan(stack, phases=full_phases(f))
    a = customer(stack)
    own = stack.request(
        "POST", f"/customers/{a['id']}/entitlements", {"type": "boolean", "feature_key": "sso"}
    )
    assert own.status == 201, own
    clock.at = d("2027-03-10T12:00:00Z")
    assert problem(subscribe(stack, a["id"]), 409)["conflicting_entity_id"] == own.json()["id"]
    assert stack.request("GET", "/subscriptions").json()["data"] == []


def test_an_immediate_upgrade_keeps_the_usage_of_the_current_period(stack: Stack) -> None:
    wall = floor_minute(datetime.now(UTC))
    clock = install_clock(wall - timedelta(hours=2))
    f = features(stack)
    for key, limit in (("basic", 100), ("premium", 1000)):
        card = usage_card(f["tokens"], entitlement={"type": "metered", "limit": limit, "usage_period": "P1M"})
        published_plan(stack, key, phases=[{"key": "default", "name": "Default", "rate_cards": [card]}])
    a = customer(stack)
    start = wall - timedelta(minutes=90)
    clock.at = start
    sub = subscribe(stack, a["id"], "basic")
    assert sub.status == 201, sub
    event = {
        "id": "e1",
        "source": "test",
        "type": "prompt",
        "subject": "acme-a",
        "time": format_rfc3339(wall - timedelta(minutes=60)),
        "data": {"tokens": 30},
    }
    assert stack.ingest([event]).status == 202
    stack.drain()

    clock.at = wall - timedelta(minutes=30)
    change = {"customer": {"id": a["id"]}, "plan": {"key": "premium"}, "timing": "immediate"}
    changed = stack.request("POST", f"/subscriptions/{sub.json()['id']}/change", change)
    assert changed.status == 200, changed
    tokens = entitlements(stack, a["id"])["tokens"]
    assert tokens["metadata"]["subscription_id"] == changed.json()["next"]["id"]
    # Measured from the current usage period's start (the old subscription's start), not the change.
    assert tokens["measure_usage_from"] == format_rfc3339(start)
    value = stack.request("GET", f"/customers/{a['id']}/entitlements/tokens/value")
    assert value.status == 200, value
    assert Decimal(value.json()["usage"]) == 30
    assert Decimal(value.json()["balance"]) == 970  # premium's 1000, minus what basic already used


def test_the_rate_function_advances_subscriptions_on_each_customers_time(stack: Stack) -> None:
    clock = install_clock(d("2027-03-09T00:00:00Z"))
    f = features(stack)
    published_plan(stack, phases=full_phases(f))
    a = customer(stack)
    clock.at = d("2027-03-10T12:00:00Z")
    assert subscribe(stack, a["id"]).status == 201
    event = {"time": "2027-03-10T12:05:00Z", "detail-type": "Scheduled Event"}
    assert rate.lambda_handler(event, None)["subscriptions_advanced"] == 0  # nothing due yet
    clock.at = d("2027-03-24T12:00:00Z")  # the trial's 14 days are over
    assert rate.lambda_handler(event, None)["subscriptions_advanced"] == 1
    assert {k: v["type"] for k, v in entitlements(stack, a["id"]).items()} == {
        "tokens": "metered",
        "sso": "static",
    }
    assert rate.lambda_handler(event, None)["subscriptions_advanced"] == 0


def test_a_feature_archived_after_publishing_leaves_the_subscription_without_its_entitlement(
    stack: Stack,
) -> None:
    clock = install_clock(d("2027-03-09T00:00:00Z"))
    f = features(stack)
    published_plan(stack, phases=[{**full_phases(f)[1], "key": "only"}])  # the paid phase alone
    assert stack.request("DELETE", f"/features/{f['sso']}").status == 204
    a = customer(stack)
    clock.at = d("2027-03-10T12:00:00Z")
    assert subscribe(stack, a["id"]).status == 201
    assert {k: v["type"] for k, v in entitlements(stack, a["id"]).items()} == {"tokens": "metered"}
