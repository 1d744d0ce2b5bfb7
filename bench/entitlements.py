"""Entitlement access on the local stack over real HTTP, and its DynamoDB cost in-process.

1. `python -m local` in a subprocess; 1,000 customers x 10 features (4 metered on one count
   meter, split by a `plan` dimension filter; 3 boolean; 3 static) created through the API; then
   `GET /customers/{id}/entitlement-access` for random customers: p50 / p99 latency. Then
   ingest -> `has_access` false latency: the event that exhausts a grant, until the access check
   shows it.
2. In-process moto: the DynamoDB requests and items read by one access check.
"""

from __future__ import annotations

import random
import signal
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import requests

from bench.latency import _start

PLANS = ("free", "pro", "team", "enterprise")
BOOLEANS = ("sso", "audit_log", "priority_support")
STATICS = ("models", "regions", "seats")


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median, top = statistics.median(ordered) * 1000, ordered[-1] * 1000
    return f"p50 {median:.1f} ms, p99 {p99 * 1000:.1f} ms, max {top:.1f} ms"


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}"})

    def post(self, path: str, body: Any, ctype: str = "application/json") -> Any:
        resp = self.session.post(self.base + path, json=body, headers={"Content-Type": ctype}, timeout=30)
        if resp.status_code >= 300:
            raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.text else None

    def get(self, path: str) -> Any:
        resp = self.session.get(self.base + path, timeout=30)
        resp.raise_for_status()
        return resp.json()


def _catalog(api: Api) -> None:
    meter = api.post(
        "/meters",
        {
            "key": "calls",
            "name": "Calls",
            "aggregation": "count",
            "event_type": "call",
            "dimensions": {"plan": "$.plan"},
        },
    )
    for plan in PLANS:
        api.post(
            "/features",
            {
                "key": f"calls_{plan}",
                "name": plan,
                "meter": {"id": meter["id"], "filters": {"plan": {"eq": plan}}},
            },
        )
    for key in (*BOOLEANS, *STATICS):
        api.post("/features", {"key": key, "name": key})


def _customer(api: Api, n: int) -> str:
    cid = str(api.post("/customers", {"key": f"cust-{n}", "name": f"Customer {n}"})["id"])
    for plan in PLANS:
        api.post(
            f"/customers/{cid}/entitlements",
            {
                "type": "metered",
                "feature_key": f"calls_{plan}",
                "usage_period": {"interval": "P1M"},
                "issue": {"amount": 5},
            },
        )
    for key in BOOLEANS:
        api.post(f"/customers/{cid}/entitlements", {"type": "boolean", "feature_key": key})
    for key in STATICS:
        api.post(
            f"/customers/{cid}/entitlements",
            {"type": "static", "feature_key": key, "config": {"limit": n % 7}},
        )
    return cid


def measure_local(customers: int = 1000, samples: int = 2000, workers: int = 8) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "meterline.env"
        proc = _start(env_file)
        try:
            env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
            api = Api(env["METERLINE_URL"] + "/v3/openmeter", env["METERLINE_TOKEN"])
            _catalog(api)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                ids = list(pool.map(lambda n: _customer(api, n), range(customers)))
            setup = time.perf_counter() - t0
            print(
                f"entitlements on the local stack: {customers} customers x 10 features"
                f" ({customers * 10:,} entitlements) created over HTTP in {setup:.0f} s"
            )
            rnd = random.Random(7)
            latencies = []
            for _ in range(samples):
                cid = rnd.choice(ids)
                t = time.perf_counter()
                rows = api.get(f"/customers/{cid}/entitlement-access")["data"]
                latencies.append(time.perf_counter() - t)
                assert len(rows) == 10, rows
            print(f"  GET entitlement-access, {samples} random customers: {_percentiles(latencies)}")
            flips = []
            for n, cid in enumerate(rnd.sample(ids, 20)):
                events = [
                    {
                        "specversion": "1.0",
                        "id": f"flip-{n}-{i}",
                        "source": "bench",
                        "type": "call",
                        "subject": f"cust-{ids.index(cid)}",
                        "data": {"plan": "pro"},
                    }
                    for i in range(5)
                ]
                t = time.perf_counter()
                api.post("/events", events, "application/cloudevents-batch+json")
                while True:
                    rows = api.get(f"/customers/{cid}/entitlement-access")["data"]
                    if not next(r for r in rows if r["feature_key"] == "calls_pro")["has_access"]:
                        break
                    if time.perf_counter() - t > 30:
                        raise RuntimeError("access not cut after 30 s")
                    time.sleep(0.02)  # poll like a gateway would, not in a busy loop
                flips.append(time.perf_counter() - t)
            print(
                f"  POST /events (exhausting a grant) -> has_access false, 20 samples: {_percentiles(flips)}"
                " (target: 2,000 ms)"
            )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


def measure_reads() -> None:
    """In-process: DynamoDB requests and items read by one access check of 10 entitlements."""
    from moto import mock_aws

    from bench.harness import Bench
    from functions.api.handler import lambda_handler as api_handler
    from shared import bootstrap as wiring
    from shared.aws import clients

    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        b = Bench()
        wiring.entitlements.cache_clear()  # built on this bench's (counted) client
        wiring.entitlement_service.cache_clear()  # (built on top of it)
        items = {"read": 0}

        def count_items(parsed: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name in ("Query", "Scan"):
                items["read"] += len(parsed.get("Items", []))
            elif model.name == "GetItem":
                items["read"] += 1 if parsed.get("Item") else 0
            elif model.name == "BatchGetItem":
                items["read"] += sum(len(v) for v in parsed.get("Responses", {}).values())

        clients.dynamodb().meta.events.register("after-call.dynamodb.*", count_items)

        class InProcess(Api):
            def post(self, path: str, body: Any, ctype: str = "application/json") -> Any:
                resp = api_handler(b.api_event("POST", path, body, ctype), None)
                assert resp["statusCode"] < 300, resp
                return orjson.loads(resp["body"]) if resp["body"] else None

        api = InProcess("", "")
        _catalog(api)
        cid = _customer(api, 1)
        b.reset_counts()
        items["read"] = 0
        resp = api_handler(b.api_event("GET", f"/customers/{cid}/entitlement-access", None), None)
        assert resp["statusCode"] == 200 and len(orjson.loads(resp["body"])["data"]) == 10, resp
        calls = dict(b.calls)
        print(
            f"  one access check (10 entitlements): {sum(calls.values())} DynamoDB requests {calls},"
            f" {items['read']} items read (1 API token + 10 access states)"
        )


if __name__ == "__main__":
    measure_reads()
    measure_local()
