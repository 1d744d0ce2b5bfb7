"""Every product-catalog, tax-code and default-tax-code operation of the contract, served and validated."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.test_contract_routes import contract_operation, served_routes
from tests.integration import conftest as integration
from tests.support import contract
from tests.support.catalog import features, flat_card, full_phases, plan_body
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack

CATALOG_PATHS = (
    "/openmeter/plans",
    "/openmeter/addons",
    "/openmeter/tax-codes",
    "/openmeter/defaults/tax-codes",
)


def catalog_operations() -> set[str]:
    return {op.operation_id for op in contract.operations().values() if op.path.startswith(CATALOG_PATHS)}


def test_every_catalog_operation_is_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert len(catalog_operations()) == 26
    assert catalog_operations() - served == set()


def test_every_catalog_operation_answers_in_the_contract_shape(stack: Stack) -> None:
    seen: set[str] = set()

    def call(method: str, path: str, status: int, body: Any = None) -> Any:
        resp = stack.request(method, path, body)
        assert resp.status == status, resp
        op = contract.find_operation(method, "/v3/openmeter" + path)
        assert op is not None
        seen.add(op.operation_id)
        return contract.validate(resp, op.operation_id)

    f = features(stack)
    codes = call("GET", "/tax-codes?page[size]=10", 200)["data"]
    tax = call("POST", "/tax-codes", 201, {"key": "vat", "name": "VAT", "app_mappings": []})
    call("GET", f"/tax-codes/{tax['id']}", 200)
    call("PUT", f"/tax-codes/{tax['id']}", 200, {"name": "VAT 20", "app_mappings": []})
    call("GET", "/defaults/tax-codes", 200)
    call("PUT", "/defaults/tax-codes", 200, {"invoicing_tax_code": {"id": codes[0]["id"]}})
    plan = call("POST", "/plans", 201, plan_body(phases=full_phases(f, tax["id"])))
    addon = call(
        "POST",
        "/addons",
        201,
        {
            "key": "boost",
            "name": "Boost",
            "instance_type": "single",
            "currency": "USD",
            "rate_cards": [flat_card()],
        },
    )
    call("GET", "/addons", 200)
    call("GET", f"/addons/{addon['id']}", 200)
    call(
        "PUT",
        f"/addons/{addon['id']}",
        200,
        {"name": "B", "instance_type": "single", "rate_cards": [flat_card()]},
    )
    call("POST", f"/addons/{addon['id']}/publish", 200)
    link_body = {"name": "Boost", "addon": {"id": addon["id"]}, "from_plan_phase": "paid"}
    link = call("POST", f"/plans/{plan['id']}/addons", 201, link_body)
    call("GET", f"/plans/{plan['id']}/addons", 200)
    call("GET", f"/plans/{plan['id']}/addons/{link['id']}", 200)
    call(
        "PUT", f"/plans/{plan['id']}/addons/{link['id']}", 200, {"name": "Boost!", "from_plan_phase": "trial"}
    )
    call("GET", "/plans", 200)
    call("GET", f"/plans/{plan['id']}", 200)
    call("PUT", f"/plans/{plan['id']}", 200, {"name": "Pro", "phases": full_phases(f, tax["id"])})
    other = call("POST", "/plans", 201, plan_body(key="other"))
    call("POST", f"/plans/{other['id']}/addons", 201, {**link_body, "from_plan_phase": "default"})
    other_link = call("GET", f"/plans/{other['id']}/addons", 200)["data"][0]
    call("DELETE", f"/plans/{other['id']}/addons/{other_link['id']}", 204)
    call("DELETE", f"/plans/{other['id']}", 204)
    call("POST", f"/plans/{plan['id']}/publish", 200)
    call("POST", f"/plans/{plan['id']}/archive", 200)
    call("POST", f"/addons/{addon['id']}/archive", 200)
    call("DELETE", f"/addons/{addon['id']}", 204)
    call("DELETE", f"/tax-codes/{tax['id']}", 204)  # plans keep naming it by id (read back with deleted_at)
    assert catalog_operations() - seen == set()
