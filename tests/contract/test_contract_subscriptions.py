"""Every subscription operation of the contract, served and answering in the contract's shapes
(response schema validation)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.test_contract_routes import contract_operation, served_routes
from tests.integration import conftest as integration
from tests.support import contract
from tests.support.catalog import UNKNOWN, flat_card, plan_body
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack
from tests.support.subscriptions import customer, d, install_clock, published_plan

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack


def subscription_operations() -> set[str]:
    return {
        op.operation_id
        for op in contract.operations().values()
        if op.path.startswith("/openmeter/subscriptions")
    }


def test_every_subscription_operation_is_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert len(subscription_operations()) == 8
    assert subscription_operations() - served == set()


def test_every_subscription_operation_answers_in_the_contract_shape(stack: Stack) -> None:
    seen: set[str] = set()

    def call(method: str, path: str, status: int, body: Any = None) -> Any:
        resp = stack.request(method, path, body)
        assert resp.status == status, resp
        op = contract.find_operation(method, "/v3/openmeter" + path)
        assert op is not None
        seen.add(op.operation_id)
        return contract.validate(resp, op.operation_id)

    clock = install_clock(d("2027-03-09T00:00:00Z"))
    boost = stack.request(
        "POST",
        "/addons",
        {
            "key": "boost",
            "name": "Boost",
            "instance_type": "multiple",
            "currency": "USD",
            "rate_cards": [flat_card()],
        },
    ).json()
    stack.request("POST", f"/addons/{boost['id']}/publish")
    draft = stack.request("POST", "/plans", plan_body()).json()
    link = {"name": "Boost", "addon": {"id": boost["id"]}, "from_plan_phase": "default"}
    assert stack.request("POST", f"/plans/{draft['id']}/addons", link).status == 201
    stack.request("POST", f"/plans/{draft['id']}/publish")
    published_plan(stack, "premium")
    a = customer(stack)
    clock.at = d("2027-03-10T12:00:00Z")
    body = {"customer": {"id": a["id"]}, "plan": {"key": "pro"}, "labels": {"team": "core"}}
    sub = call("POST", "/subscriptions", 201, body)
    call("POST", "/subscriptions", 409, body)
    call("POST", "/subscriptions", 400, {**body, "plan": {"key": "nope"}})
    call("GET", "/subscriptions", 200)
    call("GET", f"/subscriptions?filter[customer_id]={a['id']}&sort=active_to desc&page[size]=5", 200)
    call("GET", f"/subscriptions/{sub['id']}", 200)
    call("GET", f"/subscriptions/{UNKNOWN}", 404)
    added = stack.request(
        "POST", f"/subscriptions/{sub['id']}/addons", {"addon": {"id": boost["id"]}, "quantity": 2}
    )
    assert added.status == 201, added
    call("GET", f"/subscriptions/{sub['id']}/addons", 200)
    call("GET", f"/subscriptions/{sub['id']}/addons?sort=updated_at desc&page[size]=1", 200)
    call("GET", f"/subscriptions/{sub['id']}/addons/{added.json()['id']}", 200)
    call("GET", f"/subscriptions/{sub['id']}/addons/{UNKNOWN}", 404)
    call("POST", f"/subscriptions/{sub['id']}/cancel", 200, {"timing": "next_billing_cycle"})
    call("POST", f"/subscriptions/{sub['id']}/cancel", 400, {"timing": "2027-03-20T00:00:00Z"})
    call("POST", f"/subscriptions/{sub['id']}/unschedule-cancelation", 200)
    call("POST", f"/subscriptions/{sub['id']}/unschedule-cancelation", 409)
    change = {"customer": {"id": a["id"]}, "plan": {"key": "premium"}, "timing": "immediate"}
    result = call("POST", f"/subscriptions/{sub['id']}/change", 200, change)
    assert result["current"]["status"] == "inactive" and result["next"]["status"] == "active"
    call("POST", f"/subscriptions/{sub['id']}/change", 409, change)
    call("POST", f"/subscriptions/{sub['id']}/cancel", 409)
    assert subscription_operations() - seen == set()
