"""`list-customer-entitlement-access` and the feature operations against the contract."""

from __future__ import annotations

import pytest

from tests.integration import conftest as integration
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack
UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def check(resp: object, operation_id: str, status: int) -> object:
    assert resp.status == status, resp  # type: ignore[attr-defined]
    return contract.validate(resp, operation_id)  # type: ignore[arg-type]


def test_entitlement_access_of_every_type(stack: Stack) -> None:
    meter = stack.request(
        "POST", "/meters", {"key": "calls", "name": "Calls", "aggregation": "count", "event_type": "call"}
    )
    features = [
        {"key": "api", "name": "API", "meter": {"id": meter.json()["id"]}},
        {"key": "sso", "name": "SSO"},
        {"key": "models", "name": "Models"},
    ]
    for body in features:
        check(stack.request("POST", "/features", body), "create-feature", 201)
    cid = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()["id"]
    for body in (
        {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "P1M"},
            "issue": {"amount": 10},
        },
        {"type": "boolean", "feature_key": "sso"},
        {"type": "static", "feature_key": "models", "config": {"models": ["gpt-4o"]}},
    ):
        assert stack.request("POST", f"/customers/{cid}/entitlements", body).status == 201
    body = check(
        stack.request("GET", f"/customers/{cid}/entitlement-access"), "list-customer-entitlement-access", 200
    )
    assert body == {
        "data": [
            {"type": "metered", "feature_key": "api", "has_access": True},
            {
                "type": "static",
                "feature_key": "models",
                "has_access": True,
                "config": '{"models":["gpt-4o"]}',
            },
            {"type": "boolean", "feature_key": "sso", "has_access": True},
        ]
    }
    viewer = stack.request("GET", f"/customers/{cid}/entitlement-access", token=VIEWER)
    check(viewer, "list-customer-entitlement-access", 200)


def test_entitlement_access_errors(stack: Stack) -> None:
    check(
        stack.request("GET", f"/customers/{UNKNOWN}/entitlement-access"),
        "list-customer-entitlement-access",
        404,
    )
    check(
        stack.request("GET", f"/customers/{UNKNOWN}/entitlement-access", token=None),
        "list-customer-entitlement-access",
        401,
    )
    check(
        stack.request("GET", f"/customers/{UNKNOWN}/entitlement-access", token=INGESTER),
        "list-customer-entitlement-access",
        403,
    )
    cid = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()["id"]
    assert check(
        stack.request("GET", f"/customers/{cid}/entitlement-access"), "list-customer-entitlement-access", 200
    ) == {"data": []}
