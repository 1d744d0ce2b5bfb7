"""Meterline benchmarks against moto, in one process on one core.

Prints: ingest and aggregate throughput through the real handlers beside a ceiling measured in
the same run (decoding and validating the same events with nothing else), DynamoDB write
requests per 1,000 events for a realistic mix, items read per meter query for a month at P1D and
for a 100-subject customer's month at PT1H (bench/customer_query.py, before and after); then on
the local stack: ingest-to-query latency and entitlement access (bench/entitlements.py); last
the rating engine alone, lines rated per second (bench/rating.py), and each function's cold
start (bench/coldstart.py: handler import and first build, before and after).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from moto import mock_aws

from bench.harness import Bench


def realistic_events(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """LLM gateway traffic in time order, as a gateway sends it: 50 customers, 2 models, 2,000 users,
    about 2,000 events a minute (~20 per customer and model each minute); each event moves 3 meters
    (count, sum, unique_count)."""
    rnd = random.Random(seed)
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    out = []
    for i in range(n):
        t = start + timedelta(milliseconds=30 * i)
        data = {
            "tokens": rnd.randrange(1, 4000),
            "model": rnd.choice(["gpt-4o", "claude"]),
            "user": f"user-{rnd.randrange(2000)}",
        }
        out.append(
            {
                "specversion": "1.0",
                "id": f"req-{i}",
                "source": "gateway",
                "type": "llm_request",
                "subject": f"customer-{rnd.randrange(50):03d}",
                "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": data,
            }
        )
    return out


def create_meters(b: Bench) -> dict[str, str]:
    from functions.api.handler import lambda_handler as api

    specs = [
        {
            "key": "llm_requests",
            "name": "Requests",
            "aggregation": "count",
            "event_type": "llm_request",
            "dimensions": {"model": "$.model"},
        },
        {
            "key": "llm_tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "llm_request",
            "value_property": "$.tokens",
            "dimensions": {"model": "$.model"},
        },
        {
            "key": "active_users",
            "name": "Users",
            "aggregation": "unique_count",
            "event_type": "llm_request",
            "value_property": "$.user",
        },
    ]
    ids = {}
    for spec in specs:
        resp = api(b.api_event("POST", "/meters", spec), None)
        assert resp["statusCode"] == 201, resp
        ids[spec["key"]] = orjson.loads(resp["body"])["id"]
    return ids


def bench_pipeline(n: int, request_size: int) -> None:
    from functions.aggregate import handler as agg
    from functions.ingest.handler import lambda_handler as ingest
    from functions.ingest.handler import service
    from shared.ingest import requests
    from shared.usage.aggregator import decode_records
    from shared.usage.counters import pre_aggregate
    from shared.usage.extract import MeterIndex, contributions

    b = Bench()
    create_meters(b)
    events = realistic_events(n)
    bodies = [orjson.dumps(events[i : i + request_size]) for i in range(0, n, request_size)]
    ctype = "application/cloudevents-batch+json"

    t0 = time.perf_counter()
    for body in bodies:
        svc = service()
        svc.validate(requests.parse(body, ctype, svc.max_events, svc.max_bytes))
    ceiling_ingest = n / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for body in bodies:
        resp = ingest(b.api_event("POST", "/events", body, ctype), None)
        assert resp["statusCode"] == 202, resp
    ingest_rate = n / (time.perf_counter() - t0)

    batches = b.kinesis_batches()
    meters = agg.aggregator().meters.list_all()
    t0 = time.perf_counter()
    for batch in batches:
        records, _ = decode_records(batch)
        index = MeterIndex(meters)
        parts = []
        for rec in records:
            found, _ = contributions(rec.event, datetime.fromisoformat(rec.event["time"]), index)
            parts.extend((rec.position, c) for c in found)
        pre_aggregate(parts)
    ceiling_agg = n / (time.perf_counter() - t0)

    b.reset_counts()
    t0 = time.perf_counter()
    for batch in batches:
        agg.lambda_handler(batch, None)
    agg_rate = n / (time.perf_counter() - t0)
    writes, items = b.writes(), b.items_written

    print(f"pipeline: {n} events, {len(bodies)} requests of {request_size}, {len(batches)} Kinesis batches")
    for name, rate, ceiling, what in (
        ("ingest", ingest_rate, ceiling_ingest, "parse + validate only"),
        ("aggregate", agg_rate, ceiling_agg, "decode + extract + pre-aggregate"),
    ):
        print(
            f"  {name:9s} {rate:9,.0f} ev/s/core ({1e6 / rate:7.1f} us/event)   ceiling ({what})"
            f" {ceiling:9,.0f} ev/s   ratio {rate / ceiling:.3f}"
        )
    print(
        f"  DynamoDB write requests per 1,000 events: {writes * 1000 / n:,.1f}"
        f"  (items written per 1,000 events: {items * 1000 / n:,.1f}; 3 meters/event, counters: hour + day"
        f" events stored once)"
    )
    print(f"  DynamoDB calls by operation: {dict(sorted(b.calls.items()))}")


def bench_month_query() -> None:
    from functions.aggregate import handler as agg
    from functions.api.handler import lambda_handler as api
    from functions.ingest.handler import lambda_handler as ingest
    from shared.meters.repository import MeterRepository
    from shared.settings import get_settings
    from shared.usage.query import UsageQueryService
    from shared.usage.requests import parse_query

    b = Bench()
    agg.aggregator.cache_clear()
    create_meters(b)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    events = []
    for minute in range(0, 31 * 24 * 60, 7):  # an event every 7 minutes for a month: 6,377 minute items
        t = start + timedelta(minutes=minute)
        events.append(
            {
                "specversion": "1.0",
                "id": f"m-{minute}",
                "source": "gateway",
                "type": "llm_request",
                "subject": "customer-001",
                "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": {"tokens": 10, "model": "gpt-4o", "user": "u1"},
            }
        )
    for i in range(0, len(events), 1000):
        resp = ingest(
            b.api_event(
                "POST", "/events", orjson.dumps(events[i : i + 1000]), "application/cloudevents-batch+json"
            ),
            None,
        )
        assert resp["statusCode"] == 202
    for batch in b.kinesis_batches():
        agg.lambda_handler(batch, None)
    meter = next(m for m in MeterRepository(get_settings().config_table).list_all() if m.key == "llm_tokens")
    svc = UsageQueryService(b.aws["dynamodb"], get_settings().usage_table)
    minute_items = len({e["time"][:16] for e in events})
    print(f"month query: one customer, {len(events)} events in {minute_items} minutes of October 2026")
    for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu"):
        q = parse_query(
            meter,
            {
                "from": "2026-10-01T00:00:00Z",
                "to": "2026-11-01T00:00:00Z",
                "granularity": "P1D",
                "time_zone": tz,
            },
        )
        t0 = time.perf_counter()
        result = svc.run(meter, q)
        ms = (time.perf_counter() - t0) * 1000
        print(
            f"  P1D {tz:15s} items read {result.items_read:5d} in {result.queries:3d} Query calls"
            f" ({len(result.rows)} rows, {ms:6.1f} ms)   vs minute items {minute_items}:"
            f" {result.items_read / minute_items:.3f} of them"
        )
    resp = api(
        b.api_event(
            "POST",
            "/meters/llm_tokens/query",
            {"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "granularity": "P1D"},
        ),
        None,
    )
    assert resp["statusCode"] == 200 and len(orjson.loads(resp["body"])["data"]) == 31


# The code before issue 12's cost work: `python -m bench cost` measures it beside the working tree.
COST_BASELINE = "a8289115c715a03104f9ac01b0486ea2617f2c17"
# Records per aggregate invocation as deployed: the 1 s batching window at a billion events a month
# over 570 customers delivers ~96 records per batch (issue 12).
DEPLOYED_BATCH_RECORDS = 100


def _run_script(root: Path, script: str, *args: object) -> dict[str, Any]:
    """One measurement in a fresh interpreter whose imports resolve to the code under `root` (the
    script is this tree's; it uses only `bench.harness.Bench` and the handlers)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), *map(str, args)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(orjson.loads(out.stdout.strip().splitlines()[-1]))


def _cost_run(root: Path, workload: str, n: int, per_batch: int) -> dict[str, Any]:
    return _run_script(root, "cost.py", workload, n, per_batch)


def _baseline_tree(here: Path, baseline: str, tmp: str) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(here), "archive", baseline], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return Path(tmp)


def bench_customer_query(subjects: int, days: int, baseline: str | None) -> None:
    """Items read by one customer's month at PT1H (issue 12: not x subjects x hours), before and after."""
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="meterline-baseline-") as tmp:
        columns = [(f"before ({baseline[:7]})", _baseline_tree(here, baseline, tmp))] if baseline else []
        columns.append(("after (this tree)", here))
        results = [(label, _run_script(root, "customer_query.py", subjects, days)) for label, root in columns]
    print(f"customer month at PT1H: {subjects} subjects, usage in every hour of {days} days, month queried")
    print(f"    {'':34s}" + "".join(f"{label:>22s}" for label, _ in results))
    for key, label in (
        ("items_read", "items read"),
        ("items_read_month_of_usage", "items read, a month of usage"),
        ("queries", "Query calls"),
        ("seconds", "seconds (moto)"),
    ):
        print(f"    {label:34s}" + "".join(f"{r[key]:>22}" for _, r in results))


def bench_cost(n_mix: int, n_high: int, per_batch: int, baseline: str | None) -> None:
    """DynamoDB units, dollars and storage per event, before (baseline commit) and after (this tree)."""
    here = Path(__file__).resolve().parent.parent
    columns: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="meterline-baseline-") as tmp:
        if baseline:
            columns.append((f"before ({baseline[:7]})", _baseline_tree(here, baseline, tmp)))
        columns.append(("after (this tree)", here))
        print(
            f"cost per event: aggregate function, {per_batch} records per batch and events arriving at "
            "385/s (a billion a month), usage flushed as deployed (USAGE_FLUSH_SECONDS, default 10 s)"
        )
        for workload, n in (("mix", n_mix), ("mix-midday", n_mix), ("high", n_high)):
            results = [(label, _cost_run(root, workload, n, per_batch)) for label, root in columns]
            title = {
                "mix": f"bench mix, start of the day (priced after {2 * n} events of warm-up)",
                "mix-midday": f"bench mix, mid-day (the day's members present; {2 * n} events of warm-up)",
                "high": "high cardinality (a new subject per event)",
            }[workload]
            print(f"  {title}, {n} events")
            print(f"    {'':34s}" + "".join(f"{label:>22s}" for label, _ in results))
            for key, label, fmt in (
                ("write_units_per_event", "write units / event", "{:.2f}"),
                ("read_units_per_event", "read units / event", "{:.2f}"),
                ("s3_requests_per_event", "S3 requests / event", "{:.3f}"),
                ("usd_per_million_events", "USD / million events (on-demand)", "{:.2f}"),
                ("dynamodb_bytes_per_event", "DynamoDB bytes / retained event", "{:,.0f}"),
                ("events_table_bytes_per_event", "  of which events table", "{:,.0f}"),
                ("s3_bytes_per_event", "S3 bytes / retained event", "{:,.0f}"),
                ("storage_usd_per_million_events_month", "storage USD / M events / month", "{:.4f}"),
            ):
                # (a key the older code's bench didn't report shows as "-")
                print(
                    f"    {label:34s}"
                    + "".join(f"{fmt.format(r[key]) if key in r else '-':>22s}" for _, r in results)
                )
            kinds = sorted({k for _, r in results for k in r["by_kind"]})
            for kind in kinds:
                print(
                    f"      {kind:32s}" + "".join(f"{r['by_kind'].get(kind, 0):>22.3f}" for _, r in results)
                )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", nargs="?", default="all", choices=["all", "cost", "query", "coldstart"])
    parser.add_argument("--runs", type=int, default=7, help="coldstart: interpreter starts per function")
    parser.add_argument("--coldstart-baseline", help="coldstart: the 'before' commit ('' for none)")
    parser.add_argument(
        "--cost-events", type=int, default=8000, help="events priced per cost workload (~2 flushes per shard)"
    )
    parser.add_argument("--batch-records", type=int, default=DEPLOYED_BATCH_RECORDS)
    parser.add_argument("--baseline", default=COST_BASELINE, help="commit priced as 'before' ('' for none)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--request-size", type=int, default=500)
    parser.add_argument("--customers", type=int, default=1000, help="customers x 10 features (entitlements)")
    args = parser.parse_args()
    from bench import coldstart

    cold_baseline = args.coldstart_baseline
    if cold_baseline is None:
        cold_baseline = coldstart.COLDSTART_BASELINE
    if args.name == "coldstart":
        coldstart.run(args.runs, cold_baseline or None)
        return
    if args.name == "query":
        bench_customer_query(100, 2, args.baseline or None)
        return
    bench_cost(args.cost_events, args.cost_events, args.batch_records, args.baseline or None)
    if args.name == "cost":
        return
    bench_customer_query(100, 2, args.baseline or None)
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        bench_pipeline(args.events, args.request_size)
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        bench_month_query()
    from bench.entitlements import measure_local, measure_reads
    from bench.latency import measure

    measure()
    measure_reads()
    measure_local(customers=args.customers)

    from bench.rating import report as rating_report

    rating_report()

    coldstart.run(args.runs, cold_baseline or None)


if __name__ == "__main__":
    main()
