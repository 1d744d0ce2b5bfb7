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

Setup isn't measured, and at ~0.3 s per customer through the handlers 10,000 customers would take
most of an hour, so only one customer (c000000) is made for real: the catalog, the customer, its
subscription and its three events through the API, ingest and aggregate handlers. The others are
clones of the items that customer added to the config and usage tables (customer, subscription,
subject and clock-member items, usage counters and the subject index), with its ids, key, name and
subject replaced, written with BatchWriteItem; the clock's `customer_count` gets the clones added.
Only the events table isn't cloned (compressed raw-event batches and dedupe claims: no invoice run
reads them). So every customer has the same usage; what is measured, `run_due` over every
customer, reads and writes exactly what it would after N real sign-ups.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from moto import mock_aws

from bench.harness import READ_OPS, WRITE_OPS, Bench
from shared.core.ids import new_id

D0 = datetime(2026, 10, 15, tzinfo=UTC)
ANCHOR = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)


CLONED_TABLES = ("CONFIG_TABLE", "USAGE_TABLE")
_ULID = re.compile(r"\b[0-7][0-9A-HJKMNP-TV-Z]{25}\b")
Item = dict[str, Any]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def key(i: int) -> str:
    return f"c{i:06d}"


def name(i: int) -> str:
    return f"Customer {i:06d}"  # the space: never inside an id, so replacing it is safe


def subject(i: int) -> str:
    return f"s{i:06d}"


def snapshot(b: Bench) -> dict[tuple[str, str], Item]:
    """Every item of the cloned tables, by (table, its key attributes)."""
    out: dict[tuple[str, str], Item] = {}
    client = b.aws["dynamodb"]
    for env in CLONED_TABLES:
        table = b.env[env]
        keys = [k["AttributeName"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]]
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                out[(table, orjson.dumps([item[k] for k in keys]).decode())] = item
    return out


def _replace(value: Any, sub: Any) -> Any:
    """A DynamoDB attribute value with `sub` applied to its strings (binary and numbers as they are)."""
    if isinstance(value, dict):
        return {k: (sub(v) if k == "S" else _replace(v, sub)) for k, v in value.items()}
    if isinstance(value, list):
        return [sub(v) if isinstance(v, str) else _replace(v, sub) for v in value]
    return value


def clone_customers(
    b: Bench, template: dict[str, list[Item]], fresh: set[str], template_id: str, count: int
) -> list[str]:
    """`count` more customers like the template customer (its new items, per table), numbered from
    1; their ids. `fresh`: the ids the template's making created (its own, its subscription's): each
    clone gets new ones; the catalog's, the clock's and the meter's existed before and stay."""
    client = b.aws["dynamodb"]
    ids: list[str] = []
    batch: list[tuple[str, Item]] = []

    def flush() -> None:
        requests: dict[str, list[Item]] = {}
        for table, item in batch:
            requests.setdefault(table, []).append({"PutRequest": {"Item": item}})
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        batch.clear()

    for i in range(1, count + 1):
        mapping = {old: new_id() for old in fresh}
        mapping |= {key(0): key(i), name(0): name(i), subject(0): subject(i)}
        pattern = re.compile("|".join(re.escape(k) for k in mapping))

        def sub(text: str, pattern: re.Pattern[str] = pattern, mapping: dict[str, str] = mapping) -> str:
            return pattern.sub(lambda m: mapping[m.group(0)], text)

        ids.append(mapping[template_id])
        for table, items in template.items():
            for item in items:
                batch.append((table, _replace(item, sub)))
                if len(batch) == 25:
                    flush()
    if batch:
        flush()
    return ids


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


Call = Callable[..., Any]


def seed_catalog(call: Call) -> dict[str, Any]:
    """The sandbox billing profile, one sum meter, four features on it and the published plan;
    returns a test clock at D0 (the template customer's subscription starts there)."""
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
    return dict(call("POST", "/test-clocks", {"frozen_time": iso(D0)}, 201))


def seed_template(
    b: Bench, call: Call, clock_id: str
) -> tuple[str, list[dict[str, Any]], dict[tuple[str, str], Item], dict[tuple[str, str], Item]]:
    """Customer c000000 subscribed on the clock with three usage events aggregated: (its id, the
    events, the tables before and after), what `template_items` and `clone_customers` copy."""
    from functions.aggregate.handler import lambda_handler as aggregate
    from functions.ingest.handler import lambda_handler as ingest

    before = snapshot(b)
    body = {
        "key": key(0),
        "name": name(0),
        "currency": "USD",
        "usage_attribution": {"subject_keys": [subject(0)]},
        "test_clock_id": clock_id,
    }
    template_id = call("POST", "/customers", body, 201)["id"]
    call(
        "POST",
        "/subscriptions",
        {"customer": {"id": template_id}, "plan": {"key": "bench"}, "billing_anchor": iso(ANCHOR)},
        201,
    )
    events = [
        {
            "specversion": "1.0",
            "id": f"e0-{k}",
            "source": "b",
            "type": "use",
            "subject": subject(0),
            "time": iso(D0 + timedelta(days=1 + k, hours=k)),
            "data": {"n": 700 + k * 1111},
        }
        for k in range(3)
    ]
    ev = b.api_event("POST", "/events", events, "application/cloudevents-batch+json")
    ev["resource"], ev["pathParameters"] = "/v3/openmeter/events", None
    assert ingest(ev, None)["statusCode"] == 202
    for batch in b.kinesis_batches():
        aggregate(batch, None)
    after = snapshot(b)
    return template_id, events, before, after


def template_items(
    before: dict[tuple[str, str], Item], after: dict[tuple[str, str], Item], template_id: str
) -> tuple[dict[str, list[Item]], set[str]]:
    """The items the template customer added, by table, and the ids it minted (its own and its
    subscription's). Items that name none of them, nor its key or subject (the usage journal's
    shard items) are shared: a clone of them would be the same item."""
    template: dict[str, list[Item]] = {}
    for (table, _), item in sorted((k, v) for k, v in after.items() if k not in before):
        template.setdefault(table, []).append(item)

    def text(value: Any) -> str:  # binary attributes (the usage journal's blobs) name no id
        return orjson.dumps(value, default=lambda _b: "").decode()

    existing = set(_ULID.findall(text(list(before.values()))))
    fresh = {m for items in template.values() for m in _ULID.findall(text(items))} - existing
    assert template_id in fresh and len(fresh) == 2, fresh  # the customer's id and its subscription's
    names = (*fresh, key(0), name(0), subject(0))
    return {t: [i for i in items if any(n in text(i) for n in names)] for t, items in template.items()}, fresh


def run(customers: int) -> None:
    from bench.rating import measure as rating_alone
    from functions.api.handler import lambda_handler as api
    from shared import bootstrap

    b = Bench()

    def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = api(b.api_event(method, path, body if body is not None else b""), None)
        assert resp["statusCode"] == status, resp
        return orjson.loads(resp["body"]) if resp["body"] else None

    clock = seed_catalog(call)

    started = time.perf_counter()
    template_id, events, before, after = seed_template(b, call, clock["id"])
    changed = sorted(k for k in before if after.get(k) != before[k])
    clock_item = (
        "meterline-config",
        orjson.dumps([{"S": f"TCLOCK#{clock['id']}"}, {"S": "TCLOCK"}]).decode(),
    )
    # Making a customer adds items and only counts it on its clock: anything else would need cloning too.
    assert changed == [clock_item], changed
    template, fresh = template_items(before, after, template_id)
    ids = [template_id, *clone_customers(b, template, fresh, template_id, customers - 1)]
    b.aws["dynamodb"].update_item(
        TableName=b.env["CONFIG_TABLE"],
        Key={"pk": {"S": f"TCLOCK#{clock['id']}"}, "sk": {"S": "TCLOCK"}},
        UpdateExpression="ADD customer_count :n",
        ExpressionAttributeValues={":n": {"N": str(customers - 1)}},
    )
    setup_s = time.perf_counter() - started
    items = sum(len(v) for v in template.values())
    print(
        f"setup: {customers} customers subscribed ({customers - 1} clones of c000000's {items} items), "
        f"{len(events)} events each, in {setup_s:.1f} s"
    )

    service = bootstrap.invoices()
    process = service.process

    def progress(customer_id: str, now: datetime, invoice_ids: Any = ()) -> int:
        done = process(customer_id, now, invoice_ids)
        seen[0] += 1
        if seen[0] % 500 == 0:  # a 10,000-customer run takes an hour on moto: say how far it is
            print(f"  {seen[0]} customers in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return done

    service.process = progress  # type: ignore[method-assign]
    alone = rating_alone(1.0)
    for label, until, lines in (
        ("run 1 (one-line first invoices)", D0 + timedelta(hours=2), 1),
        ("run 2 (five-line invoices)", NOV + timedelta(hours=2), 5),
    ):
        bootstrap.new_invocation()  # a run is one invocation: per-invocation memos start empty
        b.reset_counts()
        seen = [0]
        t0, cpu0 = time.perf_counter(), time.process_time()
        invoiced = service.run_due(ids, until)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert invoiced == customers and service.failures == 0, (invoiced, service.failures)
        reads = sum(n for op, n in b.calls.items() if op in READ_OPS)
        writes = sum(n for op, n in b.calls.items() if op in WRITE_OPS)
        total = sum(b.calls.values())
        by_op = ", ".join(f"{op} {n / customers:.2f}" for op, n in sorted(b.calls.items()))
        rating_s = alone["us_per_line"] * lines / 1e6
        per_invoice = seconds / customers
        print(
            f"{label}: {seconds:.1f} s for {customers} invoices = {per_invoice * 1000:.1f} s per 1,000 "
            f"(CPU {cpu / customers * 1000:.1f} s per 1,000, load average {os.getloadavg()[0]:.1f}); "
            f"{total / customers:.2f} DynamoDB requests per invoice ({reads / customers:.2f} reads, "
            f"{writes / customers:.2f} writes: {by_op}); "
            f"{per_invoice / rating_s:,.0f}x the rating engine alone "
            f"({rating_s * 1e6:.0f} us for {lines} lines)"
        )
    totals = []
    for n, customer_id in ((0, ids[0]), (customers - 1, ids[-1])):  # the template and its last clone
        sample = call("GET", f"/invoices?filter[customer_id]={customer_id}")
        issued = [i for i in sample["data"] if i["status"] != "gathering"]
        assert len(issued) == 2, sample
        full = call("GET", f"/invoices/{issued[-1]['id']}")
        assert len(full["lines"]) == 5, [ln["name"] for ln in full["lines"]]
        assert full["status"] == "paid", full["status"]
        totals.append(full["totals"]["total"])
        print(f"spot check: {key(n)}'s second invoice {full['number']}: 5 lines, paid, total {totals[-1]}")
    assert totals[0] == totals[-1], totals  # same usage, same plan: same bill


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.invoices")
    parser.add_argument("--customers", type=int, default=10_000, help="customers invoiced (default 10,000)")
    args = parser.parse_args()
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        run(args.customers)


if __name__ == "__main__":
    main()
