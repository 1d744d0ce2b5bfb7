"""Every prepaid-credit operation of the contract, served and answering in the contract's shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.test_contract_routes import contract_operation, served_routes
from tests.integration import conftest as integration
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack


def credit_operations() -> set[str]:
    return {op.operation_id for op in contract.operations().values() if "/credits/" in op.path}


def test_every_credit_operation_is_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert len(credit_operations()) == 7
    assert credit_operations() - served == set()


def test_every_credit_operation_answers_in_the_contract_shape(stack: Stack) -> None:
    seen: set[str] = set()

    def call(method: str, path: str, status: int, body: Any = None) -> Any:
        resp = stack.request(method, path, body)
        assert resp.status == status, resp
        op = contract.find_operation(method, "/v3/openmeter" + path)
        assert op is not None
        seen.add(op.operation_id)
        return contract.validate(resp, op.operation_id)

    cid = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()["id"]
    base = f"/customers/{cid}/credits"
    full = {
        "name": "Prepaid",
        "description": "Annual prepay",
        "labels": {"deal": "q1"},
        "funding_method": "external",
        "currency": "USD",
        "amount": "1000",
        "purchase": {"currency": "EUR", "per_unit_cost_basis": "0.9"},
        "tax_config": {"behavior": "exclusive"},
        "filters": {"features": ["input_tokens"]},
        "priority": 5,
        "effective_at": "2026-01-01T00:00:00Z",
        "expires_after": "P1Y",
        "key": "order-42",
    }
    g = call("POST", base + "/grants", 201, full)
    assert g["purchase"]["amount"] == "900"  # 1000 x 0.9 EUR
    call(
        "POST",
        base + "/grants",
        201,
        {"name": "Promo", "funding_method": "none", "currency": "JPY", "amount": "500"},
    )
    call("GET", base + "/grants?page[size]=1&filter[status]=active&filter[currency]=USD", 200)
    call("GET", f"{base}/grants/{g['id']}", 200)
    call("POST", f"{base}/grants/{g['id']}/settlement/external", 200, {"status": "settled"})
    call("POST", base + "/adjustments", 201, {"name": "Correction", "currency": "USD", "amount": "1.5"})
    balances = call("GET", base + "/balance?filter[currency][oeq]=USD,JPY", 200)["balances"]
    assert {b["currency"]: b["settled"] for b in balances} == {"JPY": "500", "USD": "1001.5"}
    txs = call("GET", base + "/transactions?page[size]=1", 200)
    assert txs["meta"]["page"]["next"] is not None
    assert credit_operations() - seen == set()
