"""Test clocks end to end on the local stack (`python -m local` in a subprocess): the advance is
run by the rate handler through the local SNS poller (the stack's filtered subscription), not by
its 5-minute schedule, and the clock reports `ready`; the bound customers' periods moved on."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_advance_over_a_few_customers_completes_and_resets_them(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    h = {"Authorization": f"Bearer {local_stack['METERLINE_TOKEN']}", "Content-Type": "application/json"}

    def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = requests.request(method, f"{base}{path}", headers=h, json=body, timeout=10)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.text else None

    d0 = (datetime.now(UTC) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
    meter = call(
        "POST",
        "/meters",
        {"key": "calls", "name": "Calls", "aggregation": "count", "event_type": "call"},
        201,
    )
    call("POST", "/features", {"key": "api", "name": "API", "meter": {"id": meter["id"]}}, 201)
    clock = call("POST", "/test-clocks", {"frozen_time": iso(d0 + timedelta(hours=12))}, 201)
    ids = []
    for i in range(3):
        body = {"key": f"c{i}", "name": f"C{i}", "test_clock_id": clock["id"]}
        cid = call("POST", "/customers", body, 201)["id"]
        ent = {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "P1D", "anchor": iso(d0)},
            "measure_usage_from": iso(d0),
            "issue": {"amount": 1},
        }
        call("POST", f"/customers/{cid}/entitlements", ent, 201)
        ids.append(cid)

    target = d0 + timedelta(days=2, hours=1)
    assert call("POST", f"/test-clocks/{clock['id']}/advance", {"frozen_time": iso(target)}, 202)[
        "status"
    ] == ("advancing")
    deadline = time.monotonic() + 30  # generous for slow machines; the local run takes about a second
    got = call("GET", f"/test-clocks/{clock['id']}")
    while got["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)
        got = call("GET", f"/test-clocks/{clock['id']}")
    assert got["status"] == "ready" and got["frozen_time"] == iso(target)
    for cid in ids:
        value = call("GET", f"/customers/{cid}/entitlements/api/value")
        assert value["current_usage_period"]["from"] == iso(d0 + timedelta(days=2))
