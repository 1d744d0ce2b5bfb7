"""Every customer-charge operation of the contract, served and answering in the contract's shape."""

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


def charge_operations() -> set[str]:
    return {op.operation_id for op in contract.operations().values() if op.path.endswith("/charges")}


def test_every_charge_operation_is_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert charge_operations() == {"list-customer-charges", "create-customer-charges"}
    assert charge_operations() - served == set()


def test_every_charge_operation_answers_in_the_contract_shape(stack: Stack) -> None:
    seen: set[str] = set()

    def call(method: str, path: str, status: int, body: Any = None) -> Any:
        resp = stack.request(method, path, body)
        assert resp.status == status, resp
        op = contract.find_operation(method, "/v3/openmeter" + path)
        assert op is not None
        seen.add(op.operation_id)
        return contract.validate(resp, op.operation_id)

    meter = stack.request(
        "POST", "/meters", {"key": "runs", "name": "Runs", "aggregation": "count", "event_type": "run"}
    ).json()
    assert stack.request("POST", "/features", {"key": "runs", "name": "Runs", "meter": {"id": meter["id"]}})
    tax = stack.request(
        "POST",
        "/tax-codes",
        {
            "key": "saas",
            "name": "SaaS",
            "app_mappings": [{"app_type": "stripe", "tax_code": "txcd_10103001"}],
        },
    )
    assert tax.status == 201, tax
    cid = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()["id"]
    base = f"/customers/{cid}/charges"
    every_flat_field = {
        "type": "flat_fee",
        "name": "Setup",
        "description": "One-time setup",
        "labels": {"deal": "q1"},
        "currency": "USD",
        "invoice_at": "2026-01-01T00:00:00Z",
        "service_period": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-16T00:00:00Z"},
        "full_service_period": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-31T00:00:00Z"},
        "billing_period": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
        "unique_reference_id": "setup-1",
        "settlement_mode": "credit_then_invoice",
        "tax_config": {
            "behavior": "exclusive",
            "tax_code": {"id": tax.json()["id"]},
            "stripe": {"code": "txcd_10000000"},
            "external_invoicing": {"code": "X1"},
        },
        "payment_term": "in_advance",
        "discounts": {"percentage": 12.5},
        "feature_key": "runs",
        "proration_configuration": {"mode": "prorate_prices"},
        "amount_before_proration": {"amount": "99.99", "currency": "USD"},
    }
    flat = call("POST", base, 201, every_flat_field)
    assert flat["amount_after_proration"] == {"amount": "50", "currency": "USD"}  # 99.99 x 15/30
    every_usage_field = {
        "type": "usage_based",
        "name": "Runs",
        "description": "Metered runs",
        "labels": {"deal": "q1"},
        "currency": "EUR",
        "invoice_at": "2026-02-01T00:00:00Z",
        "service_period": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
        "unique_reference_id": "runs-1",
        "settlement_mode": "credit_only",
        "tax_config": {"behavior": "inclusive", "tax_code_id": tax.json()["id"]},
        "discounts": {"percentage": 5, "usage": "100"},
        "feature_key": "runs",
        "price": {
            "type": "volume",
            "tiers": [
                {"up_to_amount": "1000", "unit_price": {"type": "unit", "amount": "0.01"}},
                {
                    "flat_price": {"type": "flat", "amount": "5"},
                    "unit_price": {"type": "unit", "amount": "0.005"},
                },
            ],
        },
    }
    call("POST", base, 201, every_usage_field)
    page = call("GET", base + "?expand=real_time_usage&sort=created_at%20desc&page[size]=10", 200)
    assert [c["type"] for c in page["data"]] == ["usage_based", "flat_fee"]
    assert page["data"][0]["totals"]["realtime"]["total"] == "0"
    call("GET", base + "?filter[status][oeq]=created,active,final", 200)
    call("GET", base + "?filter[status][eq]=nope", 400)
    call("POST", base, 400, {**every_flat_field, "type": "usage_based"})
    assert seen == charge_operations()
