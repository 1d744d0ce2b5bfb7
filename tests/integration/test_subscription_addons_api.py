"""Subscription add-ons with quantity timelines (engine-rules §2.8 "Add-ons"): list and get per the
contract; create (`POST`) and quantity changes (`PATCH`) beyond it, with the same timing rules as cancel
and change. Each change opens a timeline segment; the contract's `quantity` (>= 1) is the quantity in
force, else the next one scheduled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.support import contract
from tests.support.catalog import UNKNOWN, flat_card, plan_body
from tests.support.harness import Stack
from tests.support.problems import problem
from tests.support.subscriptions import customer, d, install_clock, subscribe

T0 = d("2027-03-10T12:00:00Z")


def addon(stack: Stack, key: str, instance_type: str, currency: str = "USD", publish: bool = True) -> str:
    body = {
        "key": key,
        "name": key.title(),
        "instance_type": instance_type,
        "currency": currency,
        "rate_cards": [flat_card(key)],
    }
    created = stack.request("POST", "/addons", body)
    assert created.status == 201, created
    if publish:
        assert stack.request("POST", f"/addons/{created.json()['id']}/publish").status == 200
    return str(created.json()["id"])


@pytest.fixture
def setup(stack: Stack) -> dict[str, Any]:
    clock = install_clock(T0 - timedelta(days=1))
    ids = {
        "boost": addon(stack, "boost", "single"),
        "seats": addon(stack, "seats", "multiple"),
        "other": addon(stack, "other", "single"),
        "euro": addon(stack, "euro", "single", "EUR"),
        "draft": addon(stack, "draft", "single", publish=False),
    }
    plan = stack.request("POST", "/plans", plan_body()).json()
    for key, extra in (("boost", {}), ("seats", {"max_quantity": 10})):
        link = {"name": key, "addon": {"id": ids[key]}, "from_plan_phase": "default", **extra}
        assert stack.request("POST", f"/plans/{plan['id']}/addons", link).status == 201
    assert stack.request("POST", f"/plans/{plan['id']}/publish").status == 200
    c = customer(stack)
    clock.at = T0
    sub = subscribe(stack, c["id"], billing_anchor="2027-03-01T00:00:00Z")
    assert sub.status == 201, sub
    return {"clock": clock, "ids": ids, "sub": sub.json()["id"]}


def test_quantity_timeline(stack: Stack, setup: dict[str, Any]) -> None:
    ids, base = setup["ids"], f"/subscriptions/{setup['sub']}/addons"
    seats = stack.request("POST", base, {"addon": {"id": ids["seats"]}, "quantity": 3})
    assert seats.status == 201, seats
    body = seats.json()
    assert body["quantity"] == 3 and body["quantity_at"] == "2027-03-10T12:00:00Z"
    assert body["timeline"] == [{"active_from": "2027-03-10T12:00:00Z", "quantity": 3}]
    assert body["name"] == "Seats" and body["rate_cards"][0]["rate_card"]["key"] == "seats"
    seats_path = f"{base}/{body['id']}"

    more = stack.request("PATCH", seats_path, {"quantity": 5, "timing": "next_billing_cycle"})
    assert more.status == 200, more
    assert more.json()["quantity"] == 3  # still 3 until April
    assert more.json()["timeline"] == [
        {"active_from": "2027-03-10T12:00:00Z", "active_to": "2027-04-01T00:00:00Z", "quantity": 3},
        {"active_from": "2027-04-01T00:00:00Z", "quantity": 5},
    ]
    gone = stack.request("PATCH", seats_path, {"quantity": 0, "timing": "2027-05-01T00:00:00Z"})
    assert gone.status == 200, gone
    assert gone.json()["timeline"][-2:] == [
        {"active_from": "2027-04-01T00:00:00Z", "active_to": "2027-05-01T00:00:00Z", "quantity": 5},
        {"active_from": "2027-05-01T00:00:00Z", "quantity": 0},
    ]
    assert gone.json()["active_to"] == "2027-05-01T00:00:00Z"
    setup["clock"].at = d("2027-04-02T00:00:00Z")
    got = stack.request("GET", seats_path)
    assert got.json()["quantity"] == 5 and got.json()["quantity_at"] == "2027-04-02T00:00:00Z"

    # A single-instance add-on from the next cycle (the clock is in April now: May 1st).
    boost = stack.request(
        "POST", base, {"addon": {"id": ids["boost"]}, "quantity": 1, "timing": "next_billing_cycle"}
    )
    assert boost.status == 201, boost
    assert boost.json()["active_from"] == "2027-05-01T00:00:00Z"
    assert (boost.json()["quantity"], boost.json()["quantity_at"]) == (1, "2027-05-01T00:00:00Z")
    listed = stack.request("GET", base)
    assert listed.status == 200
    assert [a["addon"]["id"] for a in contract.validate(listed, "list-subscription-addons")["data"]] == [
        ids["seats"],
        ids["boost"],
    ]
    contract.validate(got, "get-subscription-addon")
    problem(stack.request("GET", f"{base}/{UNKNOWN}"), 404)
    problem(stack.request("GET", f"/subscriptions/{UNKNOWN}/addons"), 404)


@pytest.mark.parametrize(
    ("key", "quantity", "extra", "field", "status"),
    [
        ("boost", 2, {}, "quantity", 400),  # single-instance
        ("seats", 11, {}, "quantity", 400),  # the plan offers at most 10
        ("seats", 0, {}, "quantity", 400),  # create with 0
        ("other", 1, {}, "addon.id", 400),  # not offered by the plan
        ("euro", 1, {}, "addon.id", 400),  # another currency
        ("draft", 1, {}, "addon.id", 400),  # not published
        ("seats", 1, {"timing": "2027-03-15T00:00:00Z"}, "timing", 400),  # not on a period boundary
        ("seats", 1, {"timing": "2027-03-01T00:00:00Z"}, "timing", 400),  # in the past
    ],
)
def test_bad_add_ons_name_the_field_and_write_nothing(
    stack: Stack,
    setup: dict[str, Any],
    key: str,
    quantity: int,
    extra: dict[str, Any],
    field: str,
    status: int,
) -> None:
    base = f"/subscriptions/{setup['sub']}/addons"
    problem(
        stack.request("POST", base, {"addon": {"id": setup["ids"][key]}, "quantity": quantity, **extra}),
        status,
        field,
    )
    assert stack.request("GET", base).json()["data"] == []


def test_the_same_add_on_twice_is_a_conflict(stack: Stack, setup: dict[str, Any]) -> None:
    base = f"/subscriptions/{setup['sub']}/addons"
    assert stack.request("POST", base, {"addon": {"id": setup["ids"]["seats"]}, "quantity": 1}).status == 201
    problem(stack.request("POST", base, {"addon": {"id": setup["ids"]["seats"]}, "quantity": 2}), 409)
    problem(stack.request("POST", base, {"addon": {"id": UNKNOWN}, "quantity": 1}), 400, "addon.id")
