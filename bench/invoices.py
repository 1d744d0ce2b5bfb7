"""Invoice run benchmark against moto, in one process: `python -m bench.invoices [--customers N]`.

N customers (default 10,000) on one test clock, each subscribed mid-month (2026-10-15, anchor the 1st)
to a plan of five rate cards, the shape `bench.rating` rates: a prorated in-advance platform fee, a
graduated usage price with a minimum spend, a unit price with free units and a percentage discount,
a volume price, and a package price (unit + `divide`/`ceiling`). Each customer has a few events in
October. Two runs of the invoice provider are measured, as a test clock's advance calls it
(`InvoiceService.run_due`):

  run 1 at 10-15T02:00: the first invoice of each customer, one line (the prorated October fee);
  run 2 at 11-01T02:00: the five-line invoice (October's four usage lines, November's fee).

For each: seconds per 1,000 invoices, DynamoDB requests (reads and writes, by operation) per invoice,
and the ratio of the run's time to the rating engine's alone on the same five lines (`bench.rating`).
Setup (customers, subscriptions, usage) goes through the real handlers and isn't counted.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from moto import mock_aws

from bench.harness import READ_OPS, WRITE_OPS, Bench

D0 = datetime(2026, 10, 15, tzinfo=UTC)
ANCHOR = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_body(features: dict[str, str]) -> dict[str, Any]:
    def usage(key: str, price: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "key": key,
            "name": key.title(),
            "feature": {"id": features[key]},
            "billing_cadence": "P1M",
            "price": price,
            **extra,
        }

    tiers = [
        {"up_to_amount": "1000", "unit_price": {"type": "unit", "amount": "0.3"}},
        {"up_to_amount": "5000", "unit_price": {"type": "unit", "amount": "0.2"}},
        {"unit_price": {"type": "unit", "amount": "0.1"}},
    ]
    return {
        "key": "bench",
        "name": "Bench",
        "currency": "USD",
        "billing_cadence": "P1M",
        "phases": [
            {
                "key": "main",
                "name": "Main",
                "rate_cards": [
                    {
                        "key": "platform",
                        "name": "Platform fee",
                        "billing_cadence": "P1M",
                        "payment_term": "in_advance",
                        "price": {"type": "flat", "amount": "99"},
                    },
                    usage(
                        "tokens", {"type": "graduated", "tiers": tiers}, commitments={"minimum_amount": "50"}
                    ),
                    usage(
                        "requests",
                        {"type": "unit", "amount": "0.002"},
                        discounts={"usage": "1000", "percentage": 10},
                    ),
                    usage("storage", {"type": "volume", "tiers": tiers}),
                    usage(
                        "packs",
                        {"type": "unit", "amount": "5"},
                        unit_config={
                            "operation": "divide",
                            "conversion_factor": "100",
                            "rounding": "ceiling",
                        },
                    ),
                ],
            }
        ],
    }


def run(customers: int) -> None:
    from bench.rating import measure as rating_alone
    from functions.aggregate.handler import lambda_handler as aggregate
    from functions.api.handler import lambda_handler as api
    from functions.ingest.handler import lambda_handler as ingest
    from shared import bootstrap

    b = Bench()

    def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = api(b.api_event(method, path, body if body is not None else b""), None)
        assert resp["statusCode"] == status, resp
        return orjson.loads(resp["body"]) if resp["body"] else None

    apps = {a["type"]: a["id"] for a in call("GET", "/apps")["data"]}
    sandbox = {"id": apps["sandbox"]}
    call(
        "POST",
        "/profiles",
        {
            "name": "Main",
            "default": True,
            "supplier": {"name": "Bench Ltd", "addresses": {"billing_address": {"country": "GB"}}},
            "workflow": {},
            "apps": {"tax": sandbox, "invoicing": sandbox, "payment": sandbox},
        },
        201,
    )
    meter = call(
        "POST",
        "/meters",
        {"key": "units", "name": "Units", "aggregation": "sum", "event_type": "use", "value_property": "$.n"},
        201,
    )
    features = {  # one feature per usage card (a card's key is its feature's), all on the one meter
        key: call("POST", "/features", {"key": key, "name": key.title(), "meter": {"id": meter["id"]}}, 201)[
            "id"
        ]
        for key in ("tokens", "requests", "storage", "packs")
    }
    plan = call("POST", "/plans", plan_body(features), 201)
    call("POST", f"/plans/{plan['id']}/publish")
    clock = call("POST", "/test-clocks", {"frozen_time": iso(D0)}, 201)

    started = time.perf_counter()
    ids = []
    for i in range(customers):
        body = {
            "key": f"c{i}",
            "name": f"C{i}",
            "currency": "USD",
            "usage_attribution": {"subject_keys": [f"s{i}"]},
            "test_clock_id": clock["id"],
        }
        cid = call("POST", "/customers", body, 201)["id"]
        call(
            "POST",
            "/subscriptions",
            {"customer": {"id": cid}, "plan": {"key": "bench"}, "billing_anchor": iso(ANCHOR)},
            201,
        )
        ids.append(cid)
    events = [
        {
            "specversion": "1.0",
            "id": f"e{i}-{k}",
            "source": "b",
            "type": "use",
            "subject": f"s{i}",
            "time": iso(D0 + timedelta(days=1 + k, hours=i % 24)),
            "data": {"n": 700 + (i * 37 + k * 11) % 4000},
        }
        for i in range(customers)
        for k in range(3)
    ]
    for chunk in range(0, len(events), 500):
        ev = b.api_event("POST", "/events", events[chunk : chunk + 500], "application/cloudevents-batch+json")
        ev["resource"], ev["pathParameters"] = "/v3/openmeter/events", None
        assert ingest(ev, None)["statusCode"] == 202
    for batch in b.kinesis_batches():
        aggregate(batch, None)
    setup_s = time.perf_counter() - started
    print(f"setup: {customers} customers subscribed, {len(events)} events in {setup_s:.1f} s")

    service = bootstrap.invoices()
    alone = rating_alone(1.0)
    for label, until, lines in (
        ("run 1 (one-line first invoices)", D0 + timedelta(hours=2), 1),
        ("run 2 (five-line invoices)", NOV + timedelta(hours=2), 5),
    ):
        bootstrap.new_invocation()  # a run is one invocation: per-invocation memos start empty
        b.reset_counts()
        t0 = time.perf_counter()
        service.run_due(ids, until)
        seconds = time.perf_counter() - t0
        reads = sum(n for op, n in b.calls.items() if op in READ_OPS)
        writes = sum(n for op, n in b.calls.items() if op in WRITE_OPS)
        total = sum(b.calls.values())
        by_op = ", ".join(f"{op} {n / customers:.2f}" for op, n in sorted(b.calls.items()))
        rating_s = alone["us_per_line"] * lines / 1e6
        per_invoice = seconds / customers
        print(
            f"{label}: {seconds:.1f} s for {customers} invoices = {per_invoice * 1000:.1f} s per 1,000; "
            f"{total / customers:.2f} DynamoDB requests per invoice ({reads / customers:.2f} reads, "
            f"{writes / customers:.2f} writes: {by_op}); "
            f"{per_invoice / rating_s:,.0f}x the rating engine alone "
            f"({rating_s * 1e6:.0f} us for {lines} lines)"
        )
    sample = call("GET", f"/invoices?filter[customer_id]={ids[0]}")
    issued = [i for i in sample["data"] if i["status"] != "gathering"]
    assert len(issued) == 2, sample
    full = call("GET", f"/invoices/{issued[-1]['id']}")
    assert len(full["lines"]) == 5, [ln["name"] for ln in full["lines"]]
    print(
        f"spot check: customer c0's second invoice {full['number']}: 5 lines, total {full['totals']['total']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.invoices")
    parser.add_argument("--customers", type=int, default=10_000, help="customers invoiced (default 10,000)")
    args = parser.parse_args()
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        run(args.customers)


if __name__ == "__main__":
    main()
