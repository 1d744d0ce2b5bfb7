"""Meters operations' responses against the contract, including `query-meter`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import conftest as integration
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
# The integration suite's fresh-stack fixtures (tests/contract has no conftest of its own).
_moto = integration._moto
stack = integration.stack
UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def meter_body(key: str = "tokens", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": "Tokens",
        "description": "AI tokens",
        "labels": {"env": "test"},
        "aggregation": "sum",
        "event_type": "prompt",
        "events_from": "2025-01-01T00:00:00Z",
        "value_property": "$.tokens",
        "dimensions": {"model": "$.model"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(stack: Stack, key: str = "tokens", **overrides: Any) -> dict[str, Any]:
    resp = stack.request("POST", "/meters", meter_body(key, **overrides))
    assert resp.status == 201, resp
    return contract.validate(resp, "create-meter")


def check(resp: Any, operation_id: str, status: int) -> Any:
    assert resp.status == status, resp
    return contract.validate(resp, operation_id)


def test_create(stack: Stack) -> None:
    create(stack)
    create(
        stack,
        "requests",
        aggregation="count",
        value_property=None,
        dimensions=None,
        labels=None,
        description=None,
        events_from=None,
    )


def test_create_bad_requests(stack: Stack) -> None:
    cases: list[Any] = [
        meter_body(key="Bad Key"),
        meter_body(name=""),
        meter_body(name="n" * 257),
        meter_body(aggregation="median"),
        meter_body(value_property=None),
        meter_body(value_property="tokens"),
        meter_body(dimensions={"subject": "$.s"}),
        meter_body(dimensions={"m": "$.tokens"}),
        meter_body(labels={"kong": "x"}),
        meter_body(events_from="soon"),
        meter_body(extra=True),
        {},
        [],
        b"{oops",
    ]
    for body in cases:
        check(stack.request("POST", "/meters", body), "create-meter", 400)


def test_create_conflict(stack: Stack) -> None:
    """The contract declares no 409 for create-meter (only 201/400/401/403), though a taken key
    must be refused: the body is checked against the contract's shared `Conflict` response."""
    create(stack)
    resp = stack.request("POST", "/meters", meter_body())
    assert resp.status == 409, resp
    contract.validate(resp, "create-meter", response_ref="Conflict")
    assert "409" not in contract.declared_statuses("create-meter")  # flips when the contract adds it


def test_list(stack: Stack) -> None:
    check(stack.request("GET", "/meters"), "list-meters", 200)
    for i in range(3):
        create(stack, f"m{i}")
    body = check(
        stack.request("GET", "/meters?page[size]=2&page[number]=2&sort=key desc"), "list-meters", 200
    )
    assert [m["key"] for m in body["data"]] == ["m0"]
    check(stack.request("GET", "/meters?filter[key][contains]=m&filter[name]=Tokens"), "list-meters", 200)
    for bad in ("sort=colour", "filter[key][gt]=m", "filter[colour]=x", "page[size]=x", "page[bogus]=1"):
        check(stack.request("GET", f"/meters?{bad}"), "list-meters", 400)


def test_get(stack: Stack) -> None:
    meter = create(stack)
    check(stack.request("GET", f"/meters/{meter['id']}"), "get-meter", 200)
    check(stack.request("GET", "/meters/tokens"), "get-meter", 200)
    check(stack.request("GET", f"/meters/{UNKNOWN}"), "get-meter", 404)


def test_update(stack: Stack) -> None:
    meter = create(stack)
    path = f"/meters/{meter['id']}"
    check(
        stack.request("PUT", path, {"name": "N", "labels": {"a": "b"}, "dimensions": {}}), "update-meter", 200
    )
    check(stack.request("PUT", path, {"description": None, "labels": None}), "update-meter", 200)
    for bad in ({"key": "other"}, {"aggregation": "count"}, {"name": ""}, {"dimensions": {"subject": "$.x"}}):
        check(stack.request("PUT", path, bad), "update-meter", 400)
    check(stack.request("PUT", f"/meters/{UNKNOWN}", {"name": "x"}), "update-meter", 404)


def test_delete(stack: Stack) -> None:
    meter = create(stack)
    check(stack.request("DELETE", f"/meters/{meter['id']}"), "delete-meter", 204)
    check(stack.request("DELETE", f"/meters/{meter['id']}"), "delete-meter", 404)


def test_auth_errors(stack: Stack) -> None:
    meter = create(stack)
    path = f"/meters/{meter['id']}"
    calls = [
        ("POST", "/meters", meter_body("x"), "create-meter"),
        ("GET", "/meters", None, "list-meters"),
        ("GET", path, None, "get-meter"),
        ("PUT", path, {"name": "x"}, "update-meter"),
        ("DELETE", path, None, "delete-meter"),
        ("POST", f"{path}/query", {}, "query-meter"),
    ]
    for method, url, body, op in calls:
        check(stack.request(method, url, body, token=None), op, 401)
        check(stack.request(method, url, body, token=INGESTER), op, 403)
    for method, url, body, op in calls:
        if method not in ("GET",) and op != "query-meter":
            check(stack.request(method, url, body, token=VIEWER), op, 403)


# -- query ---------------------------------------------------------------------------------------
def test_query(stack: Stack) -> None:
    meter = create(stack, dimensions={"model": "$.model", "kind": "$.kind"})
    events = [
        {
            "id": str(i),
            "source": "s",
            "type": "prompt",
            "subject": f"c{i % 2}",
            "time": f"2026-01-01T0{i}:00:00Z",
            "data": {"tokens": i + 0.5, "model": "m", "kind": "k" if i else None},
        }
        for i in range(4)
    ]
    assert stack.ingest(events).status == 202
    stack.drain()
    path = f"/meters/{meter['id']}/query"
    day = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
    bodies: list[dict[str, Any]] = [
        day,
        {**day, "granularity": "PT1H", "group_by_dimensions": ["subject", "model", "kind"]},
        {**day, "granularity": "P1D", "time_zone": "Asia/Kolkata"},
        {**day, "filters": {"dimensions": {"subject": {"in": ["c0"]}, "model": {"or": [{"eq": "m"}]}}}},
        {"from": "2027-01-01T00:00:00Z", "to": "2027-01-02T00:00:00Z"},
        {},
    ]
    for body in bodies:
        result = check(stack.request("POST", path, body), "query-meter", 200)
        contract.validate_component(result, "MeterQueryResult")
    assert check(stack.request("POST", path, day), "query-meter", 200)["data"][0]["value"] == "8"
    csv_resp = stack.request("POST", path, day, headers={"Accept": "text/csv"})
    assert check(csv_resp, "query-meter", 200).splitlines()[0] == "from,to,value"
    check(stack.request("POST", f"/meters/{UNKNOWN}/query", day), "query-meter", 404)


def test_query_bad_requests(stack: Stack) -> None:
    meter = create(stack)
    path = f"/meters/{meter['id']}/query"
    day = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
    cases: list[Any] = [
        {"from": day["to"], "to": day["from"]},
        {**day, "time_zone": "Nowhere/Land"},
        {**day, "granularity": "PT2H"},
        {**day, "group_by_dimensions": ["colour"]},
        {**day, "from": "2026-01-01T00:00:01Z"},
        {**day, "colour": 1},
        {**day, "filters": {"dimensions": {"colour": {"eq": "x"}}}},
        {**day, "filters": {"dimensions": {"model": {"eq": "x", "neq": "y"}}}},
        {**day, "filters": {"dimensions": {"model": {"in": []}}}},
        {**day, "filters": {"dimensions": {"subject": {"contains": "x"}}}},
        [],
    ]
    for body in cases:
        check(stack.request("POST", path, body), "query-meter", 400)


def test_query_unknown_filter_operator(stack: Stack) -> None:
    meter = create(stack)
    body = {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "filters": {"dimensions": {"model": {"gt": "x"}}},
    }
    check(stack.request("POST", f"/meters/{meter['id']}/query", body), "query-meter", 400)
