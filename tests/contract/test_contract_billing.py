"""Every apps, billing-profile and customer-billing operation of the contract, served and validated
(the Stripe portal session's 201 is validated in tests/integration/test_billing_stripe_app.py, against
a stand-in for Stripe; the checkout session operation is not served yet)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.test_contract_routes import contract_operation, served_routes
from tests.integration import conftest as integration
from tests.support import contract
from tests.support.billing import profile_body, upsert_body
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack

BILLING_PATHS = ("/openmeter/apps", "/openmeter/profiles")
CUSTOMER_BILLING = {
    "get-customer-billing",
    "update-customer-billing",
    "update-customer-billing-app-data",
    "create-customer-stripe-portal-session",
}


def billing_operations() -> set[str]:
    ops = contract.operations().values()
    return {op.operation_id for op in ops if op.path.startswith(BILLING_PATHS)} | CUSTOMER_BILLING


def test_every_billing_operation_is_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert len(billing_operations()) == 11
    assert billing_operations() - served == set()


def test_every_billing_operation_answers_in_the_contract_shape(stack: Stack) -> None:
    seen: set[str] = set()

    def call(method: str, path: str, status: int, body: Any = None) -> Any:
        resp = stack.request(method, path, body)
        assert resp.status == status, resp
        op = contract.find_operation(method, "/v3/openmeter" + path)
        assert op is not None
        seen.add(op.operation_id)
        return contract.validate(resp, op.operation_id)

    apps = call("GET", "/apps?page[size]=10", 200)["data"]
    for app in apps:
        call("GET", f"/apps/{app['id']}", 200)
    full = profile_body(
        stack,
        description="All settings",
        labels={"team": "billing"},
        workflow={
            "collection": {
                "alignment": {
                    "type": "anchored",
                    "recurring_period": {"anchor": "2026-01-01T00:00:00Z", "interval": "P1M"},
                },
                "interval": "PT2H",
            },
            "invoicing": {"auto_advance": False, "draft_period": "P1D"},
            "payment": {"collection_method": "send_invoice", "due_after": "P7D"},
            "tax": {"default_tax_config": {"behavior": "inclusive"}},
        },
    )
    first = call("POST", "/profiles", 201, full)
    second = call("POST", "/profiles", 201, profile_body(stack, name="Second"))
    call("GET", "/profiles", 200)
    call("GET", f"/profiles/{first['id']}", 200)
    call("PUT", f"/profiles/{first['id']}", 200, upsert_body(first, name="Renamed"))
    customer = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()
    call("GET", f"/customers/{customer['id']}/billing", 200)
    call(
        "PUT",
        f"/customers/{customer['id']}/billing",
        200,
        {"billing_profile": {"id": second["id"]}, "app_data": {"external_invoicing": {"labels": {"a": "b"}}}},
    )
    stripe = {"customer_id": "cus_1", "default_payment_method_id": "pm_1", "labels": {"env": "test"}}
    call("PUT", f"/customers/{customer['id']}/billing/app-data", 200, {"stripe": stripe})
    call("GET", f"/customers/{customer['id']}/billing", 200)
    call("PUT", f"/customers/{customer['id']}/billing", 200, {})
    # no Stripe app configured: the portal session is refused naming the customer (400)
    call("POST", f"/customers/{customer['id']}/billing/stripe/portal-sessions", 400, {"stripe_options": {}})
    call("DELETE", f"/profiles/{second['id']}", 204)
    assert billing_operations() - seen == set()
