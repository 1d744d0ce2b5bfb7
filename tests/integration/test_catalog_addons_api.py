"""Add-ons (/addons) and the add-ons a plan offers (/plans/{id}/addons)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import conftest as integration
from tests.support.catalog import UNKNOWN, check, features, fields, flat_card, plan_body, problem, usage_card
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack


def addon_body(key: str = "extra_seats", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": key.replace("_", " ").title(),
        "instance_type": "multiple",
        "currency": "USD",
        "rate_cards": [flat_card(key="seat", price={"type": "flat", "amount": "5"})],
    }
    body.update(extra)
    return body


def create_addon(stack: Stack, **extra: Any) -> dict[str, Any]:
    return check(stack.request("POST", "/addons", addon_body(**extra)), "create-product-catalog-addon", 201)


def published_addon(stack: Stack, **extra: Any) -> dict[str, Any]:
    addon = create_addon(stack, **extra)
    resp = stack.request("POST", f"/addons/{addon['id']}/publish")
    return check(resp, "publish-product-catalog-addon", 200)


def draft_plan(stack: Stack, **extra: Any) -> dict[str, Any]:
    return check(stack.request("POST", "/plans", plan_body(**extra)), "create-plan", 201)


def test_addon_lifecycle_mirrors_plans(stack: Stack) -> None:
    addon = create_addon(stack)
    assert (addon["status"], addon["version"], addon["validation_errors"]) == ("draft", 1, [])
    assert (
        problem(stack.request("POST", "/addons", addon_body()), 409)["conflicting_entity_id"] == addon["id"]
    )
    update = {"name": "Seats", "instance_type": "single", "rate_cards": addon_body()["rate_cards"]}
    updated = stack.request("PUT", f"/addons/{addon['id']}", update)
    assert check(updated, "update-product-catalog-addon", 200)["instance_type"] == "single"
    active = check(
        stack.request("POST", f"/addons/{addon['id']}/publish"), "publish-product-catalog-addon", 200
    )
    assert active["status"] == "active"
    assert fields(stack.request("PUT", f"/addons/{addon['id']}", update)) == [("addonId", "invalid")]
    v2 = create_addon(stack)
    assert v2["version"] == 2
    check(stack.request("POST", f"/addons/{v2['id']}/publish"), "publish-product-catalog-addon", 200)
    old = check(stack.request("GET", f"/addons/{addon['id']}"), "get-product-catalog-addon", 200)
    assert old["status"] == "archived"
    archived = check(
        stack.request("POST", f"/addons/{v2['id']}/archive"), "archive-product-catalog-addon", 200
    )
    assert archived["status"] == "archived"
    assert stack.request("DELETE", f"/addons/{v2['id']}").status == 204
    problem(stack.request("GET", f"/addons/{v2['id']}"), 410)
    listed = check(stack.request("GET", "/addons"), "list-product-catalog-addons", 200)
    assert [a["id"] for a in listed["data"]] == [addon["id"]]
    by_id = check(
        stack.request("GET", f"/addons?filter[id]={addon['id']}"), "list-product-catalog-addons", 200
    )
    assert len(by_id["data"]) == 1


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"rate_cards": []}, "addon_has_no_rate_cards", "rate_cards"),
        ("unit", "addon_invalid_ratecard_price_for_multi_instance", "rate_cards[0].price"),
        (
            {"rate_cards": [flat_card(key="a"), flat_card(key="a")]},
            "rate_card_duplicated_key",
            "rate_cards[1].key",
        ),
    ],
)
def test_addon_validation_codes_block_publishing(stack: Stack, change: Any, code: str, field: str) -> None:
    if change == "unit":
        change = {"rate_cards": [usage_card(features(stack)["tokens"])]}
    addon = create_addon(stack, **change)
    assert [(v["code"], v["field"]) for v in addon["validation_errors"]] == [(code, field)]
    resp = stack.request("POST", f"/addons/{addon['id']}/publish")
    assert fields(resp) == [(field, "invalid")]
    assert problem(resp, 400)["invalid_parameters"][0]["reason"].startswith(code)


def test_plan_offers_addons_from_a_phase(stack: Stack) -> None:
    addon = published_addon(stack)
    plan = draft_plan(stack)
    body = {"name": "Seats", "addon": {"id": addon["id"]}, "from_plan_phase": "default", "max_quantity": 10}
    link = check(stack.request("POST", f"/plans/{plan['id']}/addons", body), "create-plan-addon", 201)
    assert (link["addon"], link["max_quantity"], link["validation_errors"]) == ({"id": addon["id"]}, 10, [])
    assert (
        problem(stack.request("POST", f"/plans/{plan['id']}/addons", body), 409)["conflicting_entity_id"]
        == link["id"]
    )
    listed = check(stack.request("GET", f"/plans/{plan['id']}/addons"), "list-plan-addons", 200)
    assert [x["id"] for x in listed["data"]] == [link["id"]]
    base = f"/plans/{plan['id']}/addons/{link['id']}"
    assert check(stack.request("GET", base), "get-plan-addon", 200) == link
    changed = check(
        stack.request("PUT", base, {"name": "Seats", "from_plan_phase": "default"}), "update-plan-addon", 200
    )
    assert "max_quantity" not in changed  # omitted on a multi-instance add-on: unlimited
    check(stack.request("POST", f"/plans/{plan['id']}/publish"), "publish-plan", 200)
    # Publishing locks the plan's add-ons.
    assert fields(stack.request("DELETE", base)) == [("planId", "invalid")]
    other = draft_plan(stack, key="team")
    link2 = check(stack.request("POST", f"/plans/{other['id']}/addons", body), "create-plan-addon", 201)
    assert stack.request("DELETE", f"/plans/{other['id']}/addons/{link2['id']}").status == 204
    problem(stack.request("GET", f"/plans/{other['id']}/addons/{link2['id']}"), 404)


def test_plan_addon_bad_links_name_the_field_and_write_nothing(stack: Stack) -> None:
    eur = published_addon(stack, key="eur_pack", currency="EUR")
    single = published_addon(stack, key="priority", instance_type="single")
    plan = draft_plan(stack)

    def link(addon_id: str, **extra: Any) -> Any:
        body = {"name": "x", "addon": {"id": addon_id}, "from_plan_phase": "default", **extra}
        return stack.request("POST", f"/plans/{plan['id']}/addons", body)

    resp = link(eur["id"])
    assert fields(resp) == [("addon.id", "invalid")]
    assert problem(resp, 400)["invalid_parameters"][0]["reason"].startswith("plan_addon_currency_mismatch")
    assert fields(link(single["id"], from_plan_phase="nope")) == [("from_plan_phase", "invalid")]
    assert fields(link(single["id"], max_quantity=2)) == [("max_quantity", "invalid")]
    assert fields(link(UNKNOWN)) == [("addon.id", "invalid")]
    assert fields(link(single["id"], max_quantity=0)) == [("max_quantity", "invalid")]
    listed = check(stack.request("GET", f"/plans/{plan['id']}/addons"), "list-plan-addons", 200)
    assert listed["data"] == []


def test_a_plan_offering_a_draft_addon_cannot_be_published(stack: Stack) -> None:
    addon = create_addon(stack)
    plan = draft_plan(stack)
    body = {"name": "Seats", "addon": {"id": addon["id"]}, "from_plan_phase": "default"}
    check(stack.request("POST", f"/plans/{plan['id']}/addons", body), "create-plan-addon", 201)
    resp = stack.request("POST", f"/plans/{plan['id']}/publish")
    assert fields(resp) == [("addons", "invalid")]
    assert problem(resp, 400)["invalid_parameters"][0]["reason"].startswith("plan_has_incompatible_addon")
    check(stack.request("POST", f"/addons/{addon['id']}/publish"), "publish-product-catalog-addon", 200)
    assert (
        check(stack.request("POST", f"/plans/{plan['id']}/publish"), "publish-plan", 200)["status"]
        == "active"
    )
