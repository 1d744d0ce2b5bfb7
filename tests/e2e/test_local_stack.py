"""End to end over real HTTP: `python -m local` in a subprocess, ingest -> aggregate -> query.

Nothing in-process: the test talks to the local API Gateway front on loopback, the events go
through moto's Kinesis, the local poller and the real aggregate handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e


def _headers(token: str, ctype: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": ctype}


def test_event_flows_from_ingest_to_query_over_http(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    token = local_stack["METERLINE_TOKEN"]
    meter = requests.post(
        f"{base}/meters",
        headers=_headers(token),
        timeout=10,
        json={
            "key": "tokens_total",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "prompt",
            "value_property": "$.tokens",
            "dimensions": {"model": "$.model"},
        },
    )
    assert meter.status_code == 201, meter.text
    event = {
        "specversion": "1.0",
        "id": "e2e-1",
        "source": "e2e",
        "type": "prompt",
        "subject": "customer-1",
        "time": "2026-01-01T10:00:05Z",
        "data": {"tokens": "42.5", "model": "gpt-4o"},
    }
    resp = requests.post(
        f"{base}/events", headers=_headers(token, "application/cloudevents+json"), json=event, timeout=10
    )
    assert resp.status_code == 202, resp.text
    # The same event again (a client retry) must not count twice.
    assert (
        requests.post(
            f"{base}/events", headers=_headers(token, "application/cloudevents+json"), json=event, timeout=10
        ).status_code
        == 202
    )

    query = {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "granularity": "PT1H",
        "group_by_dimensions": ["model", "subject"],
    }
    rows: list[dict[str, object]] = []
    deadline = time.monotonic() + 20  # generous: CI machines are slow; the benchmark measures latency
    while time.monotonic() < deadline:
        got = requests.post(
            f"{base}/meters/tokens_total/query", headers=_headers(token), json=query, timeout=10
        )
        assert got.status_code == 200, got.text
        rows = got.json()["data"]
        if rows:
            break
        time.sleep(0.05)
    assert rows == [
        {
            "value": "42.5",
            "from": "2026-01-01T10:00:00Z",
            "to": "2026-01-01T11:00:00Z",
            "dimensions": {"model": "gpt-4o", "subject": "customer-1"},
        }
    ]

    csv = requests.post(
        f"{base}/meters/tokens_total/query",
        json=query,
        timeout=10,
        headers={**_headers(token), "Accept": "text/csv"},
    )
    assert csv.text.splitlines() == [
        "from,to,subject,model,value",
        "2026-01-01T10:00:00Z,2026-01-01T11:00:00Z,customer-1,gpt-4o,42.5",
    ]


def test_auth_is_enforced_over_http(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    resp = requests.get(f"{base}/meters", timeout=10)
    assert resp.status_code == 401
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert resp.json()["status"] == 401
    bad = requests.post(
        f"{base}/events",
        data=b"{}",
        timeout=10,
        headers=_headers(local_stack["METERLINE_TOKEN"], "application/cloudevents+json"),
    )
    assert bad.status_code == 400
    assert {p["field"] for p in bad.json()["invalid_parameters"]} >= {"id", "source", "type", "subject"}


def _wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], seconds: float = 20) -> Any:
    """Poll until `done`; generous for slow CI machines (bench/ measures the latency itself)."""
    deadline = time.monotonic() + seconds
    got = fetch()
    while not done(got) and time.monotonic() < deadline:
        time.sleep(0.05)
        got = fetch()
    return got


def test_access_is_cut_at_the_limit_and_restored_by_a_reset_over_http(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    token = local_stack["METERLINE_TOKEN"]
    h = _headers(token)

    def post(path: str, body: Any, status: int) -> Any:
        resp = requests.post(f"{base}{path}", headers=h, json=body, timeout=10)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.text else None

    def ingest(events: list[dict[str, Any]]) -> None:
        ctype = "application/cloudevents-batch+json"
        resp = requests.post(f"{base}/events", headers=_headers(token, ctype), json=events, timeout=10)
        assert resp.status_code == 202, resp.text

    def access() -> list[dict[str, Any]]:
        resp = requests.get(f"{base}/customers/{cid}/entitlement-access", headers=h, timeout=10)
        assert resp.status_code == 200, resp.text
        return list(resp.json()["data"])

    def value() -> dict[str, Any]:
        resp = requests.get(f"{base}/customers/{cid}/entitlements/api/value", headers=h, timeout=10)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    meter = post(
        "/meters", {"key": "api_calls", "name": "Calls", "aggregation": "count", "event_type": "call"}, 201
    )
    post("/features", {"key": "api", "name": "API", "meter": {"id": meter["id"]}}, 201)
    customer = post(
        "/customers", {"key": "acme", "name": "Acme", "usage_attribution": {"subject_keys": ["acme"]}}, 201
    )
    cid = customer["id"]
    # Monthly periods anchored in the past, measured from the current period's start; 3 calls per
    # period, issued again at every reset.
    post(
        f"/customers/{cid}/entitlements",
        {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "P1M", "anchor": "2026-01-01T00:00:00Z"},
            "measure_usage_from": "CURRENT_PERIOD_START",
            "issue": {"amount": 3},
        },
        201,
    )
    assert access() == [{"type": "metered", "feature_key": "api", "has_access": True}]

    # Stamped two minutes ago: the reset below (now, minute-truncated) must come after them.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    calls = [
        {
            "specversion": "1.0",
            "id": f"call-{i}",
            "source": "gw",
            "type": "call",
            "subject": "acme",
            "time": now,
        }
        for i in range(3)
    ]
    ingest(calls[:2])
    seen = _wait_for(value, lambda v: v["usage"] == "2")
    assert (seen["balance"], seen["has_access"]) == ("1", True)

    ingest(calls[2:])  # the call that exhausts the allowance
    assert _wait_for(access, lambda rows: not rows[0]["has_access"]) == [
        {"type": "metered", "feature_key": "api", "has_access": False}
    ]
    ingest(calls)  # client retries: deduplicated, nothing changes
    assert value()["usage"] == "3"

    reset = requests.post(f"{base}/customers/{cid}/entitlements/api/reset", headers=h, timeout=10)
    assert reset.status_code == 204, reset.text
    assert access() == [{"type": "metered", "feature_key": "api", "has_access": True}]
    after = value()
    assert (after["usage"], after["balance"], after["has_access"]) == ("0", "3", True)
