"""Test clock benchmark against moto, in one process: `python -m bench.testclocks [--customers N]`.

A test clock with N customers (default 1,000), each with a daily metered entitlement and one call
already counted; the clock is advanced across one usage-period end (two steps: the period end and
the target). Prints the API request's cost (it only records the target) and the rate function's run
of the advance, triggered as SNS delivers it: seconds and DynamoDB requests per customer by
operation. Setup (customers, entitlements, usage) goes through the real handlers and isn't counted.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from moto import mock_aws

from bench.harness import Bench

D0 = datetime(2026, 10, 1, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(customers: int) -> None:
    from functions.aggregate.handler import lambda_handler as aggregate
    from functions.api.handler import lambda_handler as api
    from functions.ingest.handler import lambda_handler as ingest
    from functions.rate.handler import lambda_handler as rate
    from local.lambda_context import new_context

    b = Bench()

    def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = api(b.api_event(method, path, body if body is not None else b""), None)
        assert resp["statusCode"] == status, resp
        return orjson.loads(resp["body"]) if resp["body"] else None

    meter = call(
        "POST",
        "/meters",
        {"key": "calls", "name": "Calls", "aggregation": "count", "event_type": "call"},
        201,
    )
    call("POST", "/features", {"key": "api", "name": "API", "meter": {"id": meter["id"]}}, 201)
    clock = call("POST", "/test-clocks", {"frozen_time": iso(D0 + timedelta(hours=12))}, 201)
    started = time.perf_counter()
    for i in range(customers):
        body = {
            "key": f"c{i}",
            "name": f"C{i}",
            "usage_attribution": {"subject_keys": [f"s{i}"]},
            "test_clock_id": clock["id"],
        }
        cid = call("POST", "/customers", body, 201)["id"]
        ent = {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "P1D", "anchor": iso(D0)},
            "measure_usage_from": iso(D0),
            "issue": {"amount": 10},
        }
        call("POST", f"/customers/{cid}/entitlements", ent, 201)
    events = [
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "b",
            "type": "call",
            "subject": f"s{i}",
            "time": iso(D0 + timedelta(hours=1)),
        }
        for i in range(customers)
    ]
    for chunk in range(0, len(events), 500):
        ev = b.api_event("POST", "/events", events[chunk : chunk + 500], "application/cloudevents-batch+json")
        ev["resource"], ev["pathParameters"] = "/v3/openmeter/events", None
        assert ingest(ev, None)["statusCode"] == 202
    for batch in b.kinesis_batches():
        aggregate(batch, None)
    setup_s = time.perf_counter() - started
    print(f"setup: {customers} customers on one clock, entitlements and usage in {setup_s:.1f} s")

    target = D0 + timedelta(days=1, hours=6)  # across one period end (D0 + 1 day)
    b.reset_counts()
    t0 = time.perf_counter()
    call("POST", f"/test-clocks/{clock['id']}/advance", {"frozen_time": iso(target)}, 202)
    api_ms = (time.perf_counter() - t0) * 1000
    api_calls = sum(b.calls.values())
    print(f"POST /advance: {api_ms:.0f} ms, {api_calls} DynamoDB requests ({dict(b.calls)}): only the target")

    b.reset_counts()
    message = {"id": "x", "type": "test_clock.advance_requested", "data": {"test_clock": {"id": clock["id"]}}}
    sns_event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": orjson.dumps(message).decode()}}]}
    t0 = time.perf_counter()
    result = rate(sns_event, new_context("meterline-rate", timeout_s=900))
    seconds = time.perf_counter() - t0
    assert result["test_clocks"] == {clock["id"]: "ready"}, result
    got = call("GET", f"/test-clocks/{clock['id']}")
    assert got["status"] == "ready" and got["frozen_time"] == iso(target), got
    total = sum(b.calls.values())
    by_op = ", ".join(f"{op} {n / customers:.2f}" for op, n in sorted(b.calls.items()))
    print(
        f"advance run (rate function): {seconds:.1f} s for {customers} customers "
        f"({seconds / customers * 1000:.1f} ms each); {total} DynamoDB requests = "
        f"{total / customers:.2f} per customer ({by_op}); "
        f"items written {b.items_written / customers:.2f} per customer"
    )
    # Spot check: a customer's period moved on and its usage is back at zero.
    value = call("GET", "/customers/c0/entitlements/api/value")
    assert value["usage"] == "0" and value["current_usage_period"]["from"] == iso(D0 + timedelta(days=1)), (
        value
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.testclocks")
    parser.add_argument("--customers", type=int, default=1000, help="customers on the clock (default 1,000)")
    args = parser.parse_args()
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        run(args.customers)


if __name__ == "__main__":
    main()
