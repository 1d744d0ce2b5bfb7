"""The route table against the contract, and self-tests of the contract helper."""

from __future__ import annotations

import re

import pytest

from functions.api import app as api_app
from functions.api import handler as api_handler  # noqa: F401  (registers every route)
from tests.support import contract
from tests.support.harness import Response

# The ingest function sits on its own API Gateway resource (infra/constructs/api.py).
INGEST_ROUTES = [("POST", "/events")]
EXPECTED = {
    "ingest-metering-events",
    "create-meter",
    "list-meters",
    "get-meter",
    "update-meter",
    "delete-meter",
    "query-meter",
    "list-customer-entitlement-access",
}


# Where the contract is silent, endpoints in its style (README "API"): customer-scoped entitlements
# and grants, notifications, API tokens and test clocks; and methods the contract lacks on its own paths
# (subscription add-on create and quantity changes, engine-rules §2.8). Anything else served must be a
# contract operation.
EXTENSION_PREFIXES = (
    "/openmeter/customers/{}/entitlements",
    "/openmeter/notification/",
    "/openmeter/tokens",
    "/openmeter/test-clocks",
    "/openmeter/invoices",  # invoices: the contract has none (docs/architecture.md "Invoices")
    "/openmeter/customers/{}/invoices/",
    "/openmeter/apps/external-invoicing/invoices/",
    "/openmeter/apps/{}/stripe/webhook",  # Stripe's invoice events (OpenMeter's v1 app webhook)
)
EXTENSION_METHODS = {
    ("POST", "/openmeter/subscriptions/{}/addons"),
    ("PATCH", "/openmeter/subscriptions/{}/addons/{}"),
}


def served_routes() -> list[tuple[str, str]]:
    app = api_app.app
    routes = [(r.method.upper(), r.path) for r in (*app._static_routes, *app._dynamic_routes)]
    return sorted({*routes, *INGEST_ROUTES})


def to_contract_path(path: str) -> str:
    return "/openmeter" + re.sub(r"<([^>]+)>", r"{\1}", path)


def contract_operation(method: str, path: str) -> contract.Operation | None:
    wanted = re.sub(r"\{[^}]+\}", "{}", to_contract_path(path))
    for op in contract.operations().values():
        if op.method == method and re.sub(r"\{[^}]+\}", "{}", op.path) == wanted:
            return op
    return None


def is_extension(path: str) -> bool:
    return re.sub(r"\{[^}]+\}", "{}", to_contract_path(path)).startswith(EXTENSION_PREFIXES)


def test_every_served_route_is_a_contract_operation_or_a_named_extension() -> None:
    missing = [
        f"{m} /v3{to_contract_path(p)}"
        for m, p in served_routes()
        if contract_operation(m, p) is None
        and not is_extension(p)
        and (m, re.sub(r"\{[^}]+\}", "{}", to_contract_path(p))) not in EXTENSION_METHODS
    ]
    assert missing == []


def test_extensions_do_not_shadow_contract_paths() -> None:
    shadowed = [p for m, p in served_routes() if is_extension(p) and contract_operation(m, p) is not None]
    assert shadowed == []


def test_the_metering_operations_are_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert served >= EXPECTED, sorted(EXPECTED - served)


@pytest.mark.parametrize(
    ("method", "path", "operation_id"),
    [
        ("POST", "/v3/openmeter/events", "ingest-metering-events"),
        ("GET", "/v3/openmeter/meters?page[size]=1", "list-meters"),
        ("POST", "/v3/openmeter/meters", "create-meter"),
        ("GET", "/v3/openmeter/meters/01G65Z755AFWAKHE12NY0CQ9FH", "get-meter"),
        ("PUT", "/v3/openmeter/meters/01G65Z755AFWAKHE12NY0CQ9FH", "update-meter"),
        ("DELETE", "/v3/openmeter/meters/01G65Z755AFWAKHE12NY0CQ9FH", "delete-meter"),
        ("POST", "/v3/openmeter/meters/01G65Z755AFWAKHE12NY0CQ9FH/query", "query-meter"),
    ],
)
def test_served_paths_map_to_operations(method: str, path: str, operation_id: str) -> None:
    op = contract.find_operation(method, path)
    assert op is not None
    assert op.operation_id == operation_id
    assert path.split("?")[0].startswith(op.served_path.split("{")[0])


# -- the helper must be able to fail -------------------------------------------------------------
def response(status: int, body: str = "", content_type: str | None = "application/json") -> Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return Response({"statusCode": status, "headers": headers, "body": body})


METER = (
    '{"id":"01G65Z755AFWAKHE12NY0CQ9FH","key":"tokens","name":"Tokens","aggregation":"sum",'
    '"event_type":"prompt","created_at":"2024-01-01T01:01:01.001Z","updated_at":"2024-01-01T01:01:01.001Z"}'
)


def test_helper_accepts_a_valid_meter() -> None:
    assert contract.validate(response(200, METER), "get-meter")["key"] == "tokens"


@pytest.mark.parametrize(
    ("resp", "operation_id", "message"),
    [
        (response(201, METER), "get-meter", "does not declare status 201"),
        (response(409, "{}", "application/problem+json"), "create-meter", "does not declare status 409"),
        (response(200, METER, "text/html"), "get-meter", "content type [text/html] not declared"),
        (response(200, METER, None), "get-meter", "content type [missing] not declared"),
        (response(200, METER.replace('"sum"', '"median"')), "get-meter", "aggregation"),
        (response(200, METER.replace("01G65", "81G65")), "get-meter", "id"),
        (response(200, METER.replace('"key":"tokens"', '"key":"Tokens"')), "get-meter", "key"),
        (response(200, METER.replace("2024-01-01T01:01:01.001Z", "yesterday", 1)), "get-meter", "date-time"),
        (response(200, METER[:-1] + ',"extra":1}'), "get-meter", "extra"),
        (response(200, "not json"), "get-meter", "not JSON"),
        (response(202, "{}"), "ingest-metering-events", "declares no body"),
        (response(204, "x"), "delete-meter", "declares no body"),
        (
            response(
                400,
                '{"status":400,"title":"Bad Request","instance":"i","detail":"d"}',
                "application/problem+json",
            ),
            "create-meter",
            "invalid_parameters",
        ),
        (
            response(
                400,
                '{"status":400,"title":"Bad Request","instance":"i","detail":"d",'
                '"invalid_parameters":[{"field":"sort","reason":"r","rule":"enum","source":"query"}]}',
                "application/problem+json",
            ),
            "list-meters",
            "invalid_parameters/0",
        ),
        (
            response(
                200,
                '{"data":[{"value":"1.5e3","from":"2026-01-01T00:00:00Z","to":"2026-01-01T00:01:00Z",'
                '"dimensions":{}}]}',
            ),
            "query-meter",
            "value",
        ),
        (
            response(404, '{"status":404,"title":"Not Found"}', "application/problem+json"),
            "get-meter",
            "instance",
        ),
    ],
)
def test_helper_rejects(resp: Response, operation_id: str, message: str) -> None:
    with pytest.raises(contract.ContractError, match=re.escape(message)):
        contract.validate(resp, operation_id)


def test_unknown_operation() -> None:
    with pytest.raises(contract.ContractError):
        contract.validate(response(200, "{}"), "no-such-operation")


def test_spec_is_loaded_once() -> None:
    assert contract.spec() is contract.spec()
    assert contract.spec()["openapi"].startswith("3.0")
