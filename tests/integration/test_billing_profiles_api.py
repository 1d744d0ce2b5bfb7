"""Apps, billing profiles and customer billing over /v3/openmeter: defaults, the one default profile,
delete rules, validation, overrides and the effective profile."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared import bootstrap
from tests.support.billing import app_ids, profile_body, upsert_body
from tests.support.contract import full_headers  # noqa: F401  (fixture)
from tests.support.harness import VIEWER, Stack
from tests.support.problems import fields, problem

pytestmark = pytest.mark.usefixtures("full_headers")
UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def create(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    resp = stack.request("POST", "/profiles", body)
    assert resp.status == 201, resp
    return resp.json()


def customer(stack: Stack, key: str = "acme") -> dict[str, Any]:
    resp = stack.request("POST", "/customers", {"key": key, "name": key.title()})
    assert resp.status == 201, resp
    return resp.json()


def defaults(stack: Stack) -> list[str]:
    return [p["id"] for p in stack.request("GET", "/profiles").json()["data"] if p["default"]]


# -- apps --------------------------------------------------------------------------------------------
def test_sandbox_and_external_invoicing_are_installed_with_stable_ids(stack: Stack) -> None:
    apps = stack.request("GET", "/apps").json()
    assert apps["meta"]["page"] == {"number": 1, "size": 100, "total": 2}
    by_type = {a["type"]: a for a in apps["data"]}
    assert set(by_type) == {"sandbox", "external_invoicing"}  # no Stripe account configured: not listed
    assert by_type["sandbox"]["status"] == "ready"
    assert by_type["sandbox"]["definition"]["type"] == "sandbox"
    assert by_type["external_invoicing"]["enable_draft_sync_hook"] is False
    again = stack.request("GET", f"/apps/{by_type['sandbox']['id']}").json()
    assert again == by_type["sandbox"]
    problem(stack.request("GET", f"/apps/{UNKNOWN_ULID}"), 404)


# -- profiles ----------------------------------------------------------------------------------------
def test_a_profile_gets_the_contract_defaults_and_the_first_one_becomes_the_default(stack: Stack) -> None:
    first = create(stack, profile_body(stack, default=False))
    assert first["default"] is True  # the first profile is the default, whatever it asked
    assert first["workflow"] == {
        "collection": {"alignment": {"type": "subscription"}, "interval": "PT1H"},
        "invoicing": {
            "auto_advance": True,
            "draft_period": "P0D",
            "progressive_billing": True,
            "subscription_end_proration_mode": "bill_actual_period",
        },
        "payment": {"collection_method": "charge_automatically"},
        "tax": {"enabled": True, "enforced": False},
    }
    assert first["supplier"]["tax_id"] == {"code": "GB123456789"}
    second = create(stack, profile_body(stack, name="Second"))
    assert second["default"] is False
    assert stack.request("GET", f"/profiles/{first['id']}").json() == first


def test_every_workflow_setting_round_trips(stack: Stack) -> None:
    workflow = {
        "collection": {
            "alignment": {
                "type": "anchored",
                "recurring_period": {"anchor": "2026-01-01T00:00:00Z", "interval": "P1M"},
            },
            "interval": "P1D",
        },
        "invoicing": {
            "auto_advance": False,
            "draft_period": "P3D",
            "progressive_billing": False,
            "subscription_end_proration_mode": "bill_full_period",
        },
        "payment": {"collection_method": "send_invoice", "due_after": "P14D"},
        "tax": {"enabled": False, "enforced": True, "default_tax_config": {"behavior": "exclusive"}},
    }
    created = create(stack, profile_body(stack, workflow=workflow, description="EU", labels={"team": "a"}))
    assert created["workflow"] == workflow
    assert created["description"] == "EU" and created["labels"] == {"team": "a"}
    send = {**workflow, "payment": {"collection_method": "send_invoice"}}
    updated = stack.request("PUT", f"/profiles/{created['id']}", upsert_body(created, workflow=send)).json()
    assert updated["workflow"]["payment"] == {"collection_method": "send_invoice", "due_after": "P30D"}
    assert "description" not in updated  # PUT replaces: omitted optional fields are cleared
    assert updated["updated_at"] >= created["updated_at"]


def test_taking_the_default_moves_it_and_the_default_cannot_be_dropped(stack: Stack) -> None:
    a = create(stack, profile_body(stack, name="A"))
    b = create(stack, profile_body(stack, name="B", default=True))
    assert defaults(stack) == [b["id"]]
    resp = stack.request("PUT", f"/profiles/{a['id']}", upsert_body(a, default=True))
    assert resp.status == 200 and resp.json()["default"] is True
    assert defaults(stack) == [a["id"]]
    current_a = stack.request("GET", f"/profiles/{a['id']}").json()
    problem(
        stack.request("PUT", f"/profiles/{a['id']}", upsert_body(current_a, default=False)), 400, "default"
    )
    assert defaults(stack) == [a["id"]]


def test_concurrent_default_takers_leave_exactly_one_default(stack: Stack) -> None:
    create(stack, profile_body(stack, name="Base"))
    bodies = [profile_body(stack, name=f"Racer {i}", default=True) for i in range(4)]
    results: list[Any] = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = stack.request("POST", "/profiles", bodies[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == [201] * len(bodies)
    racers = {r.json()["id"] for r in results}
    only = defaults(stack)
    assert len(only) == 1 and only[0] in racers
    assert bootstrap.billing_profiles().default().id == only[0]  # type: ignore[union-attr]


def test_a_profile_in_use_cannot_be_deleted(stack: Stack) -> None:
    default = create(stack, profile_body(stack, name="Default"))
    other = create(stack, profile_body(stack, name="Enterprise"))
    body = problem(stack.request("DELETE", f"/profiles/{default['id']}"), 409)
    assert "default" in body["detail"]
    c = customer(stack)
    pin = stack.request("PUT", f"/customers/{c['id']}/billing", {"billing_profile": {"id": other["id"]}})
    assert pin.status == 200, pin
    body = problem(stack.request("DELETE", f"/profiles/{other['id']}"), 409)
    assert c["id"] in body["detail"] and body["conflicting_entity_id"] == c["id"]
    # unpinned (PUT without a profile: follow the default), it can go
    assert stack.request("PUT", f"/customers/{c['id']}/billing", {}).status == 200
    assert stack.request("DELETE", f"/profiles/{other['id']}").status == 204
    problem(stack.request("GET", f"/profiles/{other['id']}"), 404)
    problem(stack.request("DELETE", f"/profiles/{other['id']}"), 404)
    assert [p["id"] for p in stack.request("GET", "/profiles").json()["data"]] == [default["id"]]


def test_a_deleted_customer_no_longer_pins_its_profile(stack: Stack) -> None:
    create(stack, profile_body(stack, name="Default"))
    other = create(stack, profile_body(stack, name="Other"))
    c = customer(stack)
    stack.request("PUT", f"/customers/{c['id']}/billing", {"billing_profile": {"id": other["id"]}})
    assert stack.request("DELETE", f"/customers/{c['id']}").status == 204
    assert stack.request("DELETE", f"/profiles/{other['id']}").status == 204


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"default": "yes"}, "default"),
        ({"apps": {"tax": {"id": UNKNOWN_ULID}}}, "apps.invoicing"),
        (
            {"supplier": {"addresses": {"billing_address": {"country": "gb"}}}},
            "supplier.addresses.billing_address.country",
        ),
        ({"supplier": {"tax_id": {"code": "x" * 33}}}, "supplier.tax_id.code"),
        ({"workflow": {"collection": {"interval": "1 hour"}}}, "workflow.collection.interval"),
        ({"workflow": {"invoicing": {"draft_period": "P1000Y"}}}, "workflow.invoicing.draft_period"),
        (
            {"workflow": {"invoicing": {"subscription_end_proration_mode": "x"}}},
            "workflow.invoicing.subscription_end_proration_mode",
        ),
        ({"workflow": {"payment": {"collection_method": "cash"}}}, "workflow.payment"),
        (
            {"workflow": {"payment": {"collection_method": "charge_automatically", "due_after": "P1D"}}},
            "workflow.payment.charge_automatically.due_after",
        ),
        (
            {
                "workflow": {
                    "collection": {
                        "alignment": {
                            "type": "anchored",
                            "recurring_period": {"anchor": "2026-01-01T00:00:00Z", "interval": "P0D"},
                        }
                    }
                }
            },
            "workflow.collection.alignment.anchored.recurring_period.interval",
        ),
        (
            {"workflow": {"tax": {"default_tax_config": {"tax_code_id": UNKNOWN_ULID}}}},
            "workflow.tax.default_tax_config.tax_code_id",
        ),
        ({"workflow": {"tax": {"enabled": 1}}}, "workflow.tax.enabled"),
        ({"labels": {"kong": "x"}}, "labels"),
        ({"extra": 1}, "extra"),
        ({"description": None}, "description"),
    ],
)
def test_bad_profiles_are_refused_naming_the_field_and_nothing_is_written(
    stack: Stack, change: dict[str, Any], field: str
) -> None:
    body = {**profile_body(stack), **change}
    assert field in fields(stack.request("POST", "/profiles", body))
    assert stack.request("GET", "/profiles").json()["data"] == []


def test_apps_must_be_installed(stack: Stack) -> None:
    sandbox = app_ids(stack)["sandbox"]
    apps = {"tax": {"id": sandbox}, "invoicing": {"id": UNKNOWN_ULID}, "payment": {"id": sandbox}}
    assert fields(stack.request("POST", "/profiles", profile_body(stack, apps=apps))) == ["apps.invoicing.id"]


def test_profiles_page_and_viewers_read_only(stack: Stack) -> None:
    ids = [create(stack, profile_body(stack, name=f"P{i}"))["id"] for i in range(3)]
    page = stack.request("GET", "/profiles?page[size]=2&page[number]=2").json()
    assert [p["id"] for p in page["data"]] == ids[2:]
    assert page["meta"]["page"] == {"number": 2, "size": 2, "total": 3}
    assert stack.request("GET", "/profiles", token=VIEWER).status == 200
    problem(stack.request("POST", "/profiles", profile_body(stack), token=VIEWER), 403)
    problem(stack.request("GET", "/profiles/nope"), 404)


# -- customer billing --------------------------------------------------------------------------------
def test_customer_billing_override_app_data_and_effective_profile(stack: Stack) -> None:
    c = customer(stack)
    assert stack.request("GET", f"/customers/{c['id']}/billing").json() == {"app_data": {}}
    with pytest.raises(Exception, match="No billing profile"):
        bootstrap.customer_billing().effective_profile(c["id"])
    default = create(stack, profile_body(stack, name="Default"))
    other = create(stack, profile_body(stack, name="Other"))
    assert bootstrap.customer_billing().effective_profile(c["id"]).id == default["id"]

    stripe = {"customer_id": "cus_123", "default_payment_method_id": "pm_456", "labels": {"env": "test"}}
    resp = stack.request("PUT", "/customers/acme/billing/app-data", {"stripe": stripe})
    assert resp.status == 200 and resp.json() == {"stripe": stripe}
    resp = stack.request("PUT", f"/customers/{c['id']}/billing", {"billing_profile": {"id": other["id"]}})
    # the app data has its own endpoint: a billing PUT without it keeps it
    assert resp.json() == {"billing_profile": {"id": other["id"]}, "app_data": {"stripe": stripe}}
    assert bootstrap.customer_billing().effective_profile("acme").id == other["id"]
    # the default moving does not move a pinned customer
    stack.request("PUT", f"/profiles/{other['id']}", upsert_body(other, default=True))
    stack.request("PUT", f"/profiles/{default['id']}", upsert_body(default, default=True))
    assert bootstrap.customer_billing().effective_profile(c["id"]).id == other["id"]
    external = {"external_invoicing": {"labels": {"erp": "sap"}}}
    resp = stack.request(
        "PUT", f"/customers/{c['id']}/billing", {"billing_profile": {"id": other["id"]}, "app_data": external}
    )
    assert resp.json()["app_data"] == external
    stack.request("PUT", f"/customers/{c['id']}/billing", {})
    assert bootstrap.customer_billing().effective_profile(c["id"]).id == default["id"]


def test_customer_billing_errors(stack: Stack) -> None:
    c = customer(stack)
    problem(stack.request("GET", f"/customers/{UNKNOWN_ULID}/billing"), 404)
    problem(stack.request("PUT", f"/customers/{UNKNOWN_ULID}/billing", {}), 404)
    bad = {"billing_profile": {"id": UNKNOWN_ULID}}
    problem(stack.request("PUT", f"/customers/{c['id']}/billing", bad), 400, "billing_profile.id")
    problem(
        stack.request("PUT", f"/customers/{c['id']}/billing/app-data", {"stripe": {"customer_id": ""}}),
        400,
        "stripe.customer_id",
    )
    problem(stack.request("PUT", f"/customers/{c['id']}/billing/app-data", {"paypal": {}}), 400, "paypal")
    stack.request("DELETE", f"/customers/{c['id']}")
    problem(stack.request("PUT", f"/customers/{c['id']}/billing", {}), 410)
    problem(stack.request("PUT", f"/customers/{c['id']}/billing/app-data", {}), 410)
    assert stack.request("GET", f"/customers/{c['id']}/billing").status == 200


def test_a_default_taker_that_read_a_stale_default_retries_and_wins(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create(stack, profile_body(stack, name="First"))
    repo = bootstrap.billing_profiles().repo
    real = repo.default_id
    reads: list[str | None] = []

    def stale_once() -> str | None:
        # the first read names a profile that is no longer the default (another taker moved it)
        value = UNKNOWN_ULID if not reads else real()
        reads.append(value)
        return value

    monkeypatch.setattr(repo, "default_id", stale_once)
    second = create(stack, profile_body(stack, name="Second", default=True))
    assert reads == [UNKNOWN_ULID, first["id"]]  # the conditional pointer write failed, then won
    monkeypatch.setattr(repo, "default_id", real)
    assert defaults(stack) == [second["id"]]
