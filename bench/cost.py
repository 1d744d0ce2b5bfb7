"""DynamoDB cost per event, computed from the requests the real handlers make.

Every DynamoDB request the ingest and aggregate handlers send is observed on the shared client
(botocore events) and priced by DynamoDB's own rules, not counted as "calls":
  - item size: attribute names (UTF-8) + values (S/B by length, N by significant digits,
    M/L with 3 bytes + 1 per element, BOOL/NULL 1 byte);
  - writes: ceil(size / 1 KB) write units per item, the larger of the before and after image for
    an update, a failed conditional write charged like a successful one; plus one write per
    global secondary index whose keys the item has (projected size), two when the index key moves;
  - reads: ceil(size / 4 KB) read units per item (a Query sums its items first), half for an
    eventually consistent read, a missing item costing the minimum;
  - storage: every item + 100 bytes, every index entry (projected attributes + keys) + 100 bytes,
    plus S3 objects, after the run, per event;
  - S3 requests the aggregate function makes (archive objects), priced per request.
Prices: on-demand list prices in us-east-1 (after the November 2024 cut), printed with the result.

This module imports nothing from the rest of `bench` but `bench.harness.Bench` (whose interface
is stable), so `python -m bench cost` can run it against an older checkout of the code (the
baseline) in a subprocess and print both side by side.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

# USD, us-east-1 on-demand, as listed on aws.amazon.com/dynamodb/pricing/on-demand (2024-11 cut).
PRICE_PER_MILLION_WRITE_UNITS = Decimal("0.625")
PRICE_PER_MILLION_READ_UNITS = Decimal("0.125")
PRICE_GB_MONTH_DYNAMODB = Decimal("0.25")
PRICE_GB_MONTH_S3 = Decimal("0.023")
# S3 Standard requests, us-east-1: PUT/COPY/POST/LIST per 1,000, GET per 1,000.
PRICE_PER_MILLION_S3_WRITES = Decimal("5")
PRICE_PER_MILLION_S3_READS = Decimal("0.4")
S3_WRITE_OPS = {"PutObject", "CopyObject", "ListObjectsV2", "ListObjects", "UploadPart"}
ITEM_OVERHEAD = 100  # bytes DynamoDB adds per stored item and per index entry
# A billion events a month (issue 12's deployed scenario): ~385 events a second.
ARRIVAL_PER_SECOND = 385


# -- DynamoDB size rules ----------------------------------------------------------------------------
def value_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind in ("S",):
        return len(v.encode())
    if kind == "B":
        return len(v)
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").lstrip("0").split("e")[0].split("E")[0] or "0"
        return math.ceil(len(digits.rstrip("0") or "0") / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(value_size(x) + 1 for x in v)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


class Meter:
    """Prices the requests sent through one boto3 DynamoDB client."""

    def __init__(self, client: Any, reader: Any) -> None:
        self.reader = reader  # an unobserved client: reads before/after images, table layouts
        self.write_units = 0
        self.read_units = 0.0
        self.by_kind: Counter[str] = Counter()
        self._tables: dict[str, tuple[list[str], list[tuple[str, str, str, list[str] | None]]]] = {}
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def reset(self) -> None:
        self.write_units, self.read_units = 0, 0.0
        self.by_kind.clear()

    # table layout: key attributes and (index, pk, sk, projected attributes or None for ALL)
    def layout(self, table: str) -> tuple[list[str], list[tuple[str, str, str, list[str] | None]]]:
        if table not in self._tables:
            desc = self.reader.describe_table(TableName=table)["Table"]
            keys = [k["AttributeName"] for k in desc["KeySchema"]]
            indexes = []
            for gsi in desc.get("GlobalSecondaryIndexes", []):
                schema = {k["KeyType"]: k["AttributeName"] for k in gsi["KeySchema"]}
                proj = gsi["Projection"]
                attrs: list[str] | None
                if proj["ProjectionType"] == "ALL":
                    attrs = None
                elif proj["ProjectionType"] == "KEYS_ONLY":
                    attrs = []
                else:
                    attrs = list(proj.get("NonKeyAttributes", []))
                indexes.append((gsi["IndexName"], schema["HASH"], schema.get("RANGE", ""), attrs))
            self._tables[table] = (keys, indexes)
        return self._tables[table]

    def _projected(self, table: str, item: dict[str, Any], attrs: list[str] | None, pk: str, sk: str) -> int:
        keys, _ = self.layout(table)
        if attrs is None:
            return item_size(item)
        names = set(attrs) | set(keys) | {pk, sk}
        return item_size({k: v for k, v in item.items() if k in names})

    def _item_write(self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None, kind: str):
        units = max(1, math.ceil(max(item_size(before), item_size(after)) / 1024))
        self.write_units += units
        self.by_kind[f"{kind} writes"] += units
        _, indexes = self.layout(table)
        for name, pk, sk, attrs in indexes:
            had = bool(before) and pk in before  # type: ignore[operator]
            has = bool(after) and pk in after  # type: ignore[operator]
            if not had and not has:
                continue
            if had and has and before == after:
                continue
            moved = had and has and (before[pk], before.get(sk)) != (after[pk], after.get(sk))  # type: ignore[index,union-attr]
            size = max(
                self._projected(table, before, attrs, pk, sk) if had else 0,  # type: ignore[arg-type]
                self._projected(table, after, attrs, pk, sk) if has else 0,  # type: ignore[arg-type]
            )
            n = math.ceil(size / 1024) * (2 if moved else 1)
            self.write_units += n
            self.by_kind[f"{kind} index {name}"] += n

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def _read(self, sizes: list[int], consistent: bool, kind: str, per_item: bool = True) -> None:
        blocks = (
            sum(max(1, math.ceil(s / 4096)) for s in sizes)
            if per_item
            else max(1, math.ceil(sum(sizes) / 4096))
        )
        units = blocks * (1.0 if consistent else 0.5)
        self.read_units += units
        self.by_kind[f"{kind} reads"] += units  # type: ignore[assignment]

    def _kind(self, table: str, key: dict[str, Any] | None = None) -> str:
        pk = (key or {}).get("pk", {}).get("S", "")
        level = (key or {}).get("sk", {}).get("S", "?")[:1]
        if "usage" in table:
            if pk.startswith("S#"):
                return "subjects"
            if pk.startswith("J#") or pk == "JSTATE":
                return "usage journal" if pk.startswith("J#") else "usage journal state"
            return f"members {level}" if pk.startswith("U#") else f"counters {level}"
        if "events" in table:
            return "event blocks" if pk.startswith("B#") else "events"
        return "other"

    def _before(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Before images of the items a write touches (needed for sizes and index moves)."""
        name = model.name
        if name == "UpdateItem":
            context["meter"] = (
                params["TableName"],
                params["Key"],
                self._get(params["TableName"], params["Key"]),
            )
        elif name == "PutItem":
            key = {k: params["Item"][k] for k in self.layout(params["TableName"])[0]}
            context["meter"] = (params["TableName"], self._get(params["TableName"], key))
        elif name == "BatchWriteItem":
            pending = []
            for table, requests in params["RequestItems"].items():
                keys, _ = self.layout(table)
                for req in requests:
                    if "PutRequest" in req:
                        item = req["PutRequest"]["Item"]
                        pending.append((table, self._get(table, {k: item[k] for k in keys}), item))
                    else:
                        key = req["DeleteRequest"]["Key"]
                        pending.append((table, self._get(table, key), None))
            context["meter"] = pending
        context["meter_params"] = params

    def _after(self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        name = model.name
        params = context.get("meter_params", {})
        failed = "Error" in parsed
        if name == "UpdateItem":
            table, key, before = context["meter"]
            after = before if failed else self._get(table, key)  # a failed condition costs the same
            self._item_write(table, before, after, self._kind(table, key))
        elif name == "PutItem":
            table, before = context["meter"]
            self._item_write(
                table, before, before if failed else params["Item"], self._kind(table, params["Item"])
            )
        elif name == "BatchWriteItem":
            assert not parsed.get("UnprocessedItems"), "moto never throttles"
            for table, before, after in context["meter"]:
                self._item_write(table, before, after, self._kind(table, after or before))
        elif name == "GetItem":
            self._read(
                [item_size(parsed.get("Item"))],
                params.get("ConsistentRead", False),
                self._kind(params["TableName"], params["Key"]),
            )
        elif name == "BatchGetItem":
            for table, req in params["RequestItems"].items():
                found = {
                    json.dumps({k: i[k] for k in req["Keys"][0]}, sort_keys=True): i
                    for i in parsed.get("Responses", {}).get(table, [])
                }
                for key in req["Keys"]:
                    item = found.get(json.dumps(key, sort_keys=True))
                    self._read([item_size(item)], req.get("ConsistentRead", False), self._kind(table, key))
        elif name == "Query":
            values = params.get("ExpressionAttributeValues", {})
            kind = self._kind(params["TableName"], {"pk": values.get(":pk") or values.get(":p", {})})
            self._read(
                [item_size(i) for i in parsed.get("Items", [])],
                params.get("ConsistentRead", False),
                kind,
                per_item=False,
            )

    def storage(self, tables: list[str]) -> tuple[int, int]:
        """(bytes, items) stored in `tables` including index entries and per-item overhead."""
        total = items = 0
        for table in tables:
            _, indexes = self.layout(table)
            kwargs: dict[str, Any] = {"TableName": table}
            while True:
                page = self.reader.scan(**kwargs)
                for item in page["Items"]:
                    items += 1
                    total += item_size(item) + ITEM_OVERHEAD
                    for _name, pk, sk, attrs in indexes:
                        if pk in item:
                            total += self._projected(table, item, attrs, pk, sk) + ITEM_OVERHEAD
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return total, items


# -- workloads ----------------------------------------------------------------------------------------
def bench_mix(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """The bench mix (bench/__main__.py's realistic_events): 50 customers, 2 models, 2,000 users."""
    rnd = random.Random(seed)
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    out = []
    for i in range(n):
        data = {
            "tokens": rnd.randrange(1, 4000),
            "model": rnd.choice(["gpt-4o", "claude"]),
            "user": f"user-{rnd.randrange(2000)}",
        }
        out.append(
            _event(i, f"customer-{rnd.randrange(50):03d}", start + timedelta(milliseconds=30 * i), data)
        )
    return out


def high_cardinality(n: int, seed: int = 2) -> list[dict[str, Any]]:
    """A new subject per event (one-off API keys, devices)."""
    rnd = random.Random(seed)
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    out = []
    for i in range(n):
        data = {
            "tokens": rnd.randrange(1, 4000),
            "model": rnd.choice(["gpt-4o", "claude"]),
            "user": f"user-{i}",
        }
        out.append(_event(i, f"device-{i:07d}", start + timedelta(milliseconds=30 * i), data))
    return out


def _event(i: int, subject: str, t: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"req-{i}",
        "source": "gateway",
        "type": "llm_request",
        "subject": subject,
        "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": data,
    }


METERS = [
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


def seed_day_members(b: Any, meter_id: str) -> None:
    """Mid-day: the day's unique_count members as the hours of the same traffic before 09:00 UTC
    left them (~120,000 events an hour over 50 customers x 2,000 users: after a few hours every
    (customer, user) pair has its day member). Counters and minute sets need no seeding: their
    writes cost the same whether the item exists or not."""
    from shared.aws.dynamo import batch_put, to_item
    from shared.usage.counters import dims_hash, member_key, member_partition

    client = b.aws["dynamodb"]
    items = [
        to_item(
            {
                "pk": member_partition(meter_id, f"customer-{c:03d}", "D", "202611020000"),
                "sk": f"D#202611020000#{dims_hash(())}#{member_key(f'user-{u}')}",
                "sub": f"customer-{c:03d}",
                "d": {},
            }
        )
        for c in range(50)
        for u in range(2000)
    ]
    for i in range(0, len(items), 25):
        batch_put(client, b.env["USAGE_TABLE"], items[i : i + 25])


def measure(workload: str, n: int, batch_records: int) -> dict[str, Any]:
    import boto3
    import orjson

    from bench.harness import Bench
    from functions.aggregate import handler as agg
    from functions.api.handler import lambda_handler as api
    from functions.ingest.handler import lambda_handler as ingest
    from shared.aws import clients

    b = Bench()
    ids = {}
    for spec in METERS:
        resp = api(b.api_event("POST", "/meters", spec), None)
        assert resp["statusCode"] == 201, resp
        ids[spec["key"]] = json.loads(resp["body"])["id"]
    # The mix is priced after a warm-up of the same traffic (the minutes before), as a function in
    # steady state sees it: members and subjects seen earlier exist. New subjects need no warm-up.
    mix = workload.startswith("mix")
    warmup = 2 * n if mix else 0
    events = (bench_mix if mix else high_cardinality)(warmup + n)
    if workload == "mix-midday":
        seed_day_members(b, ids["active_users"])
    reader = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    meter = Meter(clients.dynamodb(), reader)
    s3_calls: Counter[str] = Counter()
    clients.s3().meta.events.register("before-call.s3", lambda model, **_: s3_calls.update([model.name]))

    from shared import bootstrap

    class ReceivedAt:
        """Ingest receives the events at the deployed arrival rate (`ARRIVAL_PER_SECOND`: a billion
        a month, ~96 records per shard-second over 4 shards, as the batches are cut), so the usage
        journal's tail spans as much traffic per flush as it would deployed (shared/usage/journal.py).
        Event times keep the mix's own spacing."""

        t = datetime.now(UTC)
        sent = 0

        def now(self) -> datetime:
            return self.t

    received = ReceivedAt()
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    service = bootstrap.ingest_service()
    if hasattr(service, "clock"):  # (an older tree's aggregation didn't depend on ingestion time)
        service.clock = received

    def publish(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i in range(0, len(chunk), batch_records):
            part = chunk[i : i + batch_records]
            received.sent += len(part)
            received.t = start + timedelta(seconds=received.sent / ARRIVAL_PER_SECOND)
            body = orjson.dumps(part)
            resp = ingest(b.api_event("POST", "/events", body, "application/cloudevents-batch+json"), None)
            assert resp["statusCode"] == 202, resp
        return b.kinesis_batches(limit=batch_records)

    for batch in publish(events[:warmup]):
        agg.lambda_handler(batch, None)
    batches = publish(events[warmup:])
    meter.reset()  # only the aggregate function's work on the priced events counts
    s3_calls.clear()
    for batch in batches:
        agg.lambda_handler(batch, None)
    # What is still journaled is flushed and priced too (the idle sweep, as if traffic stopped).
    aggregator = agg.aggregator()
    if hasattr(aggregator, "flush_due"):
        aggregator.clock = type("Later", (), {"now": lambda self: datetime.now(UTC) + timedelta(days=1)})()
        aggregator.flush_due()
    tables = [b.env["EVENTS_TABLE"], b.env["USAGE_TABLE"]]
    stored, _items = meter.storage(tables)
    events_stored, _ = meter.storage(tables[:1])
    s3_bytes = 0
    s3 = b.aws["s3"]
    for bucket in s3.list_buckets().get("Buckets", []):
        if "archive" in bucket["Name"]:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                s3_bytes += sum(o["Size"] for o in page.get("Contents", []))
    wpe = Decimal(meter.write_units) / n
    rpe = Decimal(str(meter.read_units)) / n
    s3_writes = Decimal(sum(v for k, v in s3_calls.items() if k in S3_WRITE_OPS)) / n
    s3_reads = Decimal(sum(v for k, v in s3_calls.items() if k not in S3_WRITE_OPS)) / n
    ddb_bytes, s3_bytes_each = stored / len(events), s3_bytes / len(events)
    gb = Decimal(1024**3)
    return {
        "events": n,
        "batches": len(batches),
        "flush_seconds": getattr(agg.aggregator(), "flush_seconds", None),
        "write_units_per_event": float(wpe),
        "read_units_per_event": float(rpe),
        "s3_requests_per_event": float(s3_writes + s3_reads),
        "usd_per_million_events": float(
            wpe * PRICE_PER_MILLION_WRITE_UNITS
            + rpe * PRICE_PER_MILLION_READ_UNITS
            + s3_writes * PRICE_PER_MILLION_S3_WRITES
            + s3_reads * PRICE_PER_MILLION_S3_READS
        ),
        "dynamodb_bytes_per_event": ddb_bytes,
        "events_table_bytes_per_event": events_stored / len(events),
        "s3_bytes_per_event": s3_bytes_each,
        # What a million retained events cost to keep for a month, where they are kept.
        "storage_usd_per_million_events_month": float(
            (Decimal(ddb_bytes) * PRICE_GB_MONTH_DYNAMODB + Decimal(s3_bytes_each) * PRICE_GB_MONTH_S3)
            * 1_000_000
            / gb
        ),
        "by_kind": {k: round(v / n, 3) for k, v in sorted(meter.by_kind.items())},
    }


def main() -> None:
    """`python bench/cost.py <workload> <events> <records per batch>`: one JSON line on stdout."""
    import os

    from moto import mock_aws

    from shared import settings

    # As deployed (the settings' default; an older tree has none), unless the caller sets it:
    # bench.harness would otherwise flush after every batch.
    deployed = getattr(settings.Settings, "usage_flush_seconds", 0)
    os.environ.setdefault("USAGE_FLUSH_SECONDS", str(deployed))

    workload, n, per_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        print(json.dumps(measure(workload, n, per_batch)))


if __name__ == "__main__":
    main()
