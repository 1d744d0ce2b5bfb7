"""Exactly-once metering under faults, proven against a ground truth computed from raw events.

Each test kills the aggregate handler at a write step (or replays records the way Lambda and
Kinesis can), then lets the pipeline recover and compares every counter level with the truth.
"""

from __future__ import annotations

import gzip
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from functions.aggregate import handler as aggregate_handler
from shared.ingest.publisher import partition_key
from tests.support.harness import Stack

T0 = "2026-03-01T10:"


class Crash(Exception):
    pass


def make_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        events.append(
            {
                "id": f"evt-{i}",
                "source": rnd.choice(["gw-a", "gw-b"]),
                "type": "request",
                "subject": rnd.choice(["acme", "globex", "initech"]),
                "time": f"{T0}{rnd.randrange(0, 20):02d}:{rnd.randrange(0, 60):02d}Z",
                "data": {"bytes": str(rnd.randrange(1, 1000)), "method": rnd.choice(["GET", "POST"])},
            }
        )
    return events


def truth(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[int, Decimal]]:
    """(subject, minute, method) -> (count, sum) over unique (source, id), first copy wins."""
    seen: set[tuple[str, str]] = set()
    out: dict[tuple[str, str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for e in events:
        if (e["source"], e["id"]) in seen:
            continue
        seen.add((e["source"], e["id"]))
        key = (e["subject"], e["time"][:16] + ":00Z", e["data"]["method"])
        out[key][0] += 1
        out[key][1] += Decimal(e["data"]["bytes"])
    return {k: (v[0], v[1]) for k, v in out.items()}


def setup_meters(stack: Stack) -> tuple[str, str]:
    common = {"event_type": "request", "dimensions": {"method": "$.method"}}
    total = stack.request(
        "POST",
        "/meters",
        {"key": "bytes_total", "name": "Bytes", "aggregation": "sum", "value_property": "$.bytes", **common},
    )
    count = stack.request(
        "POST", "/meters", {"key": "requests_total", "name": "Requests", "aggregation": "count", **common}
    )
    assert total.status == 201 and count.status == 201
    return total.json()["id"], count.json()["id"]


def query(stack: Stack, meter_id: str, granularity: str | None) -> dict[tuple[str, str, str], str]:
    body: dict[str, Any] = {
        "from": "2026-03-01T10:00:00Z",
        "to": "2026-03-01T11:00:00Z",
        "group_by_dimensions": ["subject", "method"],
    }
    if granularity:
        body["granularity"] = granularity
    resp = stack.request("POST", f"/meters/{meter_id}/query", body)
    assert resp.status == 200, resp
    return {
        (r["dimensions"]["subject"], r["from"], r["dimensions"]["method"]): r["value"]
        for r in resp.json()["data"]
    }


def assert_matches_truth(stack: Stack, meters: tuple[str, str], events: list[dict[str, Any]]) -> None:
    expected = truth(events)
    sum_id, count_id = meters
    by_minute_sum = query(stack, sum_id, "PT1M")
    by_minute_count = query(stack, count_id, "PT1M")
    assert by_minute_sum == {k: str(v[1]) for k, v in expected.items()}
    assert by_minute_count == {k: str(v[0]) for k, v in expected.items()}
    # The whole hour reads the H level, a 17-minute range reads Q and M: every level must agree.
    hourly: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (subject, _minute, method), (_c, s) in expected.items():
        hourly[(subject, method)] += s
    whole = query(stack, sum_id, None)
    assert {(k[0], k[2]): Decimal(v) for k, v in whole.items()} == dict(hourly)


def listed_ids(stack: Stack, source: str, sort: str) -> list[str]:
    window = "filter[time][gte]=2026-03-01T00:00:00Z&filter[time][lt]=2026-03-02T00:00:00Z"
    link: str | None = f"/events?filter[source]={source}&{window}&sort={sort}&page[size]=100"
    ids = []
    while link:  # (a walk that runs out of time budget returns a short page and a `next` link)
        resp = stack.request("GET", link.removeprefix("/v3/openmeter"))
        assert resp.status == 200, resp
        body = resp.json()
        ids += [d["event"]["id"] for d in body["data"]]
        link = body["meta"]["page"]["next"]
    return ids


def archived(stack: Stack, source: str) -> list[dict[str, Any]]:
    """`source`'s lines in the S3 archive (a duplicate line shows twice)."""
    s3 = stack.clients["s3"]
    bucket = stack.provisioned.env["EVENTS_ARCHIVE_BUCKET"]
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/"):
        for obj in page.get("Contents", []):
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            lines += [rec for rec in map(orjson.loads, body.splitlines()) if rec["source"] == source]
    return lines


def archived_ids(stack: Stack, source: str) -> list[str]:
    return [rec["id"] for rec in archived(stack, source)]


def assert_stored_once(stack: Stack, source: str, events: list[dict[str, Any]], where: Any = None) -> None:
    """Every distinct event of `source` is listed exactly once in each order and archived exactly once."""
    want = sorted({e["id"] for e in events if e["source"] == source})
    for sort in ("time", "ingested_at", "stored_at"):
        got = listed_ids(stack, source, sort)
        assert sorted(got) == want, (where, sort)
    copies = Counter(archived_ids(stack, source))
    assert sorted(copies) == want and set(copies.values()) == {1}, (where, copies)


def batch_of(stack: Stack) -> list[dict[str, Any]]:
    batches = stack.pending_batches()
    return [b for b in batches if b["Records"]]


def process(batch: dict[str, Any], crash_at: str | None = None) -> list[str]:
    steps: list[str] = []

    def step(name: str) -> None:
        steps.append(name)
        if name == crash_at:
            raise Crash(name)

    aggregate_handler.aggregator().process(batch, step=step)
    return steps


def crash_after(batch: dict[str, Any], step_index: int) -> bool:
    """Deliver `batch` and kill the handler right after its `step_index`-th write (0-based).
    True if it crashed (False: the batch has fewer writes, so it ran to the end)."""
    seen: list[str] = []

    def step(name: str) -> None:
        seen.append(name)
        if len(seen) == step_index + 1:
            raise Crash(name)

    try:
        aggregate_handler.aggregator().process(batch, step=step)
    except Crash:
        return True
    return False


def test_clean_run_matches_truth_with_duplicates_in_and_across_requests(stack: Stack) -> None:
    meters = setup_meters(stack)
    events = make_events(80)
    dupes = events[:10] + [events[3]]  # a client resend, and a duplicate inside one request
    assert stack.ingest(events).status == 202
    assert stack.ingest(dupes).status == 202
    stack.drain()
    assert_matches_truth(stack, meters, events)


def test_first_copy_wins_when_a_duplicate_carries_other_data(stack: Stack) -> None:
    meters = setup_meters(stack)
    events = make_events(5)
    altered = dict(events[0], data={"bytes": "999999", "method": "GET"})
    stack.ingest(events)
    stack.drain()
    stack.ingest([altered])
    stack.drain()
    assert_matches_truth(stack, meters, events)


def small_events(n: int) -> list[dict[str, Any]]:
    # Small enough for one run per crash point, rich enough to span all four counter levels,
    # two subjects, both shards, and a duplicate inside the request. Run n has its own ids.
    events = [
        {
            "id": f"k{i}",
            "source": f"gw{n}",
            "type": f"request_{n}",
            "subject": ["acme", "globex"][i % 2],
            "time": f"{T0}{14 + i % 3:02d}:{i:02d}Z",
            "data": {"bytes": str(10 * i + 1), "method": "GET"},
        }
        for i in range(24)
    ]
    return events + [events[4]]


def crash_run(
    stack: Stack,
    n: int,
    batch_index: int,
    step_index: int,
    retry: Callable[[dict[str, Any]], Any] | None = None,
) -> tuple[str, bool]:
    """Run n gets its own event type and meter, so runs share one stack without touching each
    other. Batch `batch_index` is killed right after its `step_index`-th write, then retried
    (`retry`, default: the whole batch again)."""
    meter = stack.request(
        "POST",
        "/meters",
        {
            "key": f"bytes_{n}",
            "name": "Bytes",
            "aggregation": "sum",
            "event_type": f"request_{n}",
            "value_property": "$.bytes",
            "dimensions": {"method": "$.method"},
        },
    )
    assert meter.status == 201
    stack.ingest(small_events(n))
    crashed = False
    for i, batch in enumerate(batch_of(stack)):
        if i == batch_index:
            crashed = crash_after(batch, step_index)
            if retry is not None:
                retry(batch)
                continue
        process(batch)  # Lambda's retry of the whole batch (or the first delivery)
    return meter.json()["id"], crashed


def test_crash_after_every_single_write_then_retry(stack: Stack) -> None:
    """For every write the handler makes (a claims chunk, a block chunk, an archive object, a
    counter), kill it right after that write, let Lambda retry the whole batch, and compare every
    level with the truth, and the listing and the archive with the distinct events."""
    n = 0
    crash_points = 0
    for batch_index in range(2):
        step_index = 0
        while True:
            n += 1
            meter_id, crashed = crash_run(stack, n, batch_index, step_index)
            expected = truth(small_events(n))
            where = (batch_index, step_index)
            assert query(stack, meter_id, "PT1M") == {k: str(v[1]) for k, v in expected.items()}, where
            per_subject: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
            for (subject, _m, method), (_c, total) in expected.items():
                per_subject[(subject, method)] += total
            whole = query(stack, meter_id, None)
            assert {(k[0], k[2]): Decimal(v) for k, v in whole.items()} == dict(per_subject), where
            assert_stored_once(stack, f"gw{n}", small_events(n), where)
            if not crashed:
                break
            crash_points += 1
            step_index += 1
    # Both events chunks and every counter item (each subject's hour and day item) of both batches.
    assert crash_points >= 10


def test_a_crash_in_storing_then_bisected_retries_store_each_event_once(stack: Stack) -> None:
    """Lambda bisects a failed batch: the retry after a crash may hold half the records, then the
    other half, then the whole batch again. Claims, blocks and archive objects written before the
    crash must neither lose an event nor list or archive one twice (a replay archives only what
    its group's objects lack; a block written again under another cut is listed once)."""
    n = 200
    for step_index in range(5):  # claims, blocks, archive object, then the first counters
        n += 1
        meter_id, _ = crash_run(stack, n, 0, step_index, retry=_bisected)
        expected = truth(small_events(n))
        assert query(stack, meter_id, "PT1M") == {k: str(v[1]) for k, v in expected.items()}, step_index
        assert_stored_once(stack, f"gw{n}", small_events(n), step_index)


def _bisected(batch: dict[str, Any]) -> None:
    records = batch["Records"]
    half = len(records) // 2
    process({"Records": records[:half]})  # in order, as Lambda retries a bisected batch
    process({"Records": records[half:]})
    process(batch)


def test_claim_written_but_counters_not_is_still_counted_once(stack: Stack) -> None:
    """OpenMeter #5118: the dedupe claim lands, the usage write after it fails, the event is
    retried. Here the retry still owns its claim, so it counts exactly once."""
    meters = setup_meters(stack)
    events = make_events(30, seed=3)
    stack.ingest(events)
    for batch in batch_of(stack):
        with pytest.raises(Crash):
            process(batch, crash_at="events:0")
        process(batch)
    assert_matches_truth(stack, meters, events)


def test_bisected_and_partial_retries_never_double_count(stack: Stack) -> None:
    meters = setup_meters(stack)
    events = make_events(60, seed=5)
    stack.ingest(events)
    for batch in batch_of(stack):
        records = batch["Records"]
        half = len(records) // 2
        with pytest.raises(Crash):
            process(batch, crash_at="counter:3")
        # Bisect on error: first half, then second half, then Kinesis redelivers a tail again.
        process({"Records": records[:half]})
        process({"Records": records[half:]})
        process({"Records": records[half // 2 :]})
    assert_matches_truth(stack, meters, events)


def test_record_delivered_twice_by_kinesis(stack: Stack) -> None:
    meters = setup_meters(stack)
    events = make_events(40, seed=9)
    stack.ingest(events)
    for batch in batch_of(stack):
        process(batch)
        process(batch)
        process({"Records": batch["Records"][-5:]})
    assert_matches_truth(stack, meters, events)


def test_two_shards_update_the_same_counter_interleaved(stack: Stack) -> None:
    meters = setup_meters(stack)
    # One subject, one minute, one method: every event hits the same counters from both shards.
    events = [
        {
            "id": f"e{i}",
            "source": f"src-{i}",
            "type": "request",
            "subject": "acme",
            "time": "2026-03-01T10:05:00Z",
            "data": {"bytes": str(i + 1), "method": "GET"},
        }
        for i in range(40)
    ]
    stack.ingest(events)
    batches = batch_of(stack)
    assert len(batches) >= 2, "events should spread over both shards"
    with pytest.raises(Crash):
        process(batches[0], crash_at="counter:2")
    process(batches[1])
    process(batches[0])
    process(batches[1])
    assert_matches_truth(stack, meters, events)


def test_invalid_values_are_stored_with_errors_and_not_counted(stack: Stack) -> None:
    meters = setup_meters(stack)
    good = make_events(5, seed=1)
    bad = [
        {
            "id": "bad-1",
            "source": "gw-a",
            "type": "request",
            "subject": "acme",
            "time": "2026-03-01T10:01:00Z",
            "data": {"bytes": "lots", "method": "GET"},
        }
    ]
    stack.ingest(good + bad)
    stack.drain()
    window = "filter[time][gte]=2026-03-01T00:00:00Z&filter[time][lt]=2026-03-02T00:00:00Z"
    listed = stack.request("GET", f"/events?filter[id]=bad-1&{window}").json()
    [stored] = listed["data"]
    assert any("not a number" in e["message"] for e in stored["validation_errors"])
    # ...and archived with them, under its event day, the event as sent.
    [line] = [rec for rec in archived(stack, "gw-a") if rec["id"] == "bad-1"]
    assert line["event"] == {"specversion": "1.0", **bad[0]} and line["time"] == bad[0]["time"]
    assert [e["code"] for e in line["validation_errors"]] == ["invalid_value"]
    sum_id, count_id = meters
    # The count meter needs no value, so the bad event still counts there.
    total = stack.request(
        "POST", f"/meters/{count_id}/query", {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T11:00:00Z"}
    ).json()["data"]
    assert total[0]["value"] == "6"
    expected_sum = sum(Decimal(e["data"]["bytes"]) for e in good)
    total = stack.request(
        "POST", f"/meters/{sum_id}/query", {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T11:00:00Z"}
    ).json()["data"]
    assert Decimal(total[0]["value"]) == expected_sum


def _truth_by(
    events: list[dict[str, Any]], aggregation: str, whole_hour: bool = False
) -> dict[tuple[str, str, str], str]:
    seen: set[tuple[str, str]] = set()
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if (e["source"], e["id"]) not in seen:
            seen.add((e["source"], e["id"]))
            window = "2026-03-01T10:00:00Z" if whole_hour else e["time"][:16] + ":00Z"
            groups[(e["subject"], window, e["data"]["method"])].append(e)
    if aggregation == "latest":
        return {k: max(v, key=lambda e: e["time"])["data"]["bytes"] for k, v in groups.items()}
    return {k: str(len({e["data"]["bytes"] for e in v})) for k, v in groups.items()}


@pytest.mark.parametrize("aggregation", ["latest", "unique_count"])
def test_crash_after_every_write_for_read_modify_write_and_member_meters(
    stack: Stack, aggregation: str
) -> None:
    """min/max/latest counters are read, folded and written back under the shard's position;
    unique_count members are plain puts. Both must survive a crash after any write."""
    n = 0
    crash_points = 0
    for batch_index in range(2):
        step_index = 0
        while True:
            n += 1
            resp = stack.request(
                "POST",
                "/meters",
                {
                    "key": f"{aggregation}_{n}",
                    "name": "m",
                    "aggregation": aggregation,
                    "event_type": f"request_{n}",
                    "value_property": "$.bytes",
                    "dimensions": {"method": "$.method"},
                },
            )
            assert resp.status == 201
            events = small_events(n)
            stack.ingest(events)
            crashed = False
            for i, batch in enumerate(batch_of(stack)):
                if i == batch_index:
                    crashed = crash_after(batch, step_index)
                process(batch)
            assert query(stack, resp.json()["id"], "PT1M") == _truth_by(events, aggregation), (
                batch_index,
                step_index,
            )
            # The whole hour reads the hour level: members skipped as existing must be there too.
            assert query(stack, resp.json()["id"], None) == _truth_by(events, aggregation, True), (
                batch_index,
                step_index,
            )
            if not crashed:
                break
            crash_points += 1
            step_index += 1
    assert crash_points >= 4


def publish_unchecked(stack: Stack, events: list[dict[str, Any]]) -> None:
    """Put records in the stream the way ingest would, minus its checks (what a poison record that
    slipped past the edge looks like to the aggregate function)."""
    stack.clients["kinesis"].put_records(
        StreamName=stack.provisioned.stream_name,
        Records=[
            {
                "PartitionKey": partition_key(e["source"], e["id"]),
                "Data": orjson.dumps({"event": e, "ingested_at": "2026-03-01T10:30:00Z"}),
            }
            for e in events
        ],
    )


def few_events(n: int) -> list[dict[str, Any]]:
    events = small_events(n)
    return events[:9] + [events[4]]  # both subjects, three minutes, both shards, a duplicate


POISON_TIMES = ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "nonsense")


def with_poison(events: list[dict[str, Any]], run: int) -> list[dict[str, Any]]:
    """The good events with poison records spread among them (each shard gets some)."""
    out = list(events)
    for i, when in enumerate(POISON_TIMES):
        poison = dict(events[i], id=f"poison-{run}-{i}", source=f"px{i}", time=when)
        out.insert(3 * i + 1, poison)
    return out


def test_poison_records_never_fail_a_batch_and_good_ones_count_once_under_crashes(stack: Stack) -> None:
    """Bad records among good ones: every batch succeeds, every good record counts exactly once,
    also when the handler is killed after a write (every third one: moto is slow; the test above
    covers every write) and the batch is bisected and retried."""
    n = 100
    crash_points = 0
    for batch_index in range(2):
        step_index = 0
        while True:
            n += 1
            meter_id, crashed = crash_run_records(stack, n, batch_index, step_index)
            expected = truth(few_events(n))
            where = (batch_index, step_index)
            assert query(stack, meter_id, "PT1M") == {k: str(v[1]) for k, v in expected.items()}, where
            if not crashed:
                break
            crash_points += 1
            step_index += 3
    assert crash_points >= 4


def crash_run_records(stack: Stack, n: int, batch_index: int, step_index: int) -> tuple[str, bool]:
    meter = stack.request(
        "POST",
        "/meters",
        {
            "key": f"bytes_{n}",
            "name": "Bytes",
            "aggregation": "sum",
            "event_type": f"request_{n}",
            "value_property": "$.bytes",
            "dimensions": {"method": "$.method"},
        },
    )
    assert meter.status == 201
    publish_unchecked(stack, with_poison(few_events(n), n))
    crashed = False
    for i, batch in enumerate(batch_of(stack)):
        if i == batch_index:
            crashed = crash_after(batch, step_index)
        records = batch["Records"]
        process({"Records": records[: len(records) // 2]})  # a bisected retry, then the whole batch
        process(batch)
    return meter.json()["id"], crashed


def late_events(n: int) -> list[dict[str, Any]]:
    """Run n's events that arrive after its hour and day items were written and read: into a minute
    that has usage, an earlier hour, and a new minute of the same hour; both subjects."""
    times = ("2026-03-01T10:14:30Z", "2026-03-01T09:59:00Z", "2026-03-01T10:45:10Z")
    return [
        {
            "id": f"late{i}",
            "source": f"gw{n}",
            "type": f"request_{n}",
            "subject": ["acme", "globex"][i % 2],
            "time": times[i % 3],
            "data": {"bytes": str(1000 + i), "method": "GET"},
        }
        for i in range(6)
    ]


KOLKATA = ZoneInfo("Asia/Kolkata")
UTC_ZONE = ZoneInfo("UTC")
# A Kolkata day [18:30Z, 18:30Z) reads two day items' hour slots and two hour items' minute slots;
# its PT1H windows (at :30 UTC) read minute slots of two hour items each.
WHOLE_DAY = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
KOLKATA_DAY = {"from": "2026-02-28T18:30:00Z", "to": "2026-03-01T18:30:00Z", "time_zone": "Asia/Kolkata"}


def windowed_truth(
    events: list[dict[str, Any]], granularity: str, tz: ZoneInfo = UTC_ZONE
) -> dict[tuple[str, str, str], str]:
    """(subject, window start, method) -> sum, windows computed with the standard library."""
    seen: set[tuple[str, str]] = set()
    out: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for e in events:
        if (e["source"], e["id"]) in seen:
            continue
        seen.add((e["source"], e["id"]))
        local = datetime.fromisoformat(e["time"].replace("Z", "+00:00")).astimezone(tz)
        if granularity == "PT1M":
            local = local.replace(second=0)
        elif granularity == "PT1H":
            local = local.replace(minute=0, second=0)
        else:
            local = local.replace(hour=0, minute=0, second=0)
        start = local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out[(e["subject"], start, e["data"]["method"])] += Decimal(e["data"]["bytes"])
    return {k: str(v) for k, v in out.items()}


def query_body(stack: Stack, meter_id: str, body: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    resp = stack.request(
        "POST", f"/meters/{meter_id}/query", {**body, "group_by_dimensions": ["subject", "method"]}
    )
    assert resp.status == 200, resp
    return {
        (r["dimensions"]["subject"], r["from"], r["dimensions"]["method"]): r["value"]
        for r in resp.json()["data"]
    }


def assert_every_level(stack: Stack, meter_id: str, events: list[dict[str, Any]], where: Any) -> None:
    assert query_body(stack, meter_id, {**WHOLE_DAY, "granularity": "PT1M"}) == windowed_truth(
        events, "PT1M"
    ), where
    assert query_body(stack, meter_id, {**WHOLE_DAY, "granularity": "PT1H"}) == windowed_truth(
        events, "PT1H"
    ), where
    assert query_body(stack, meter_id, {**WHOLE_DAY, "granularity": "P1D"}) == windowed_truth(
        events, "P1D"
    ), where
    assert query_body(stack, meter_id, {**KOLKATA_DAY, "granularity": "PT1H"}) == windowed_truth(
        events, "PT1H", KOLKATA
    ), where
    assert query_body(stack, meter_id, {**KOLKATA_DAY, "granularity": "P1D"}) == windowed_truth(
        events, "P1D", KOLKATA
    ), where


def test_crash_after_every_write_of_late_events_that_land_after_hour_and_day_items(stack: Stack) -> None:
    """Usage is aggregated and read at every level; then late events arrive (an existing minute, an
    earlier hour, a new minute). Kill the handler after each write of the late batches, retry, and
    compare minutes, hours, days, and a +05:30 zone's hours and day (slot ranges) with the truth."""
    n = 200
    crash_points = 0
    for batch_index in range(2):
        step_index = 0
        while True:
            n += 1
            meter_id, _ = crash_run(stack, n, batch_index=-1, step_index=0)  # no crash: the on-time part
            on_time = small_events(n)
            if n == 201:
                # The on-time part is the same clean run in every iteration (no crash point in it), so
                # its levels are checked once; every iteration still checks every level after its
                # late batches, and those results include the on-time usage.
                assert_every_level(stack, meter_id, on_time, "on time")
            late = late_events(n)
            stack.ingest(late + late[:2])  # with duplicates of the late events themselves
            crashed = False
            for i, batch in enumerate(batch_of(stack)):
                if i == batch_index:
                    crashed = crash_after(batch, step_index)
                process(batch)
            assert_every_level(stack, meter_id, on_time + late, (batch_index, step_index))
            if not crashed:
                break
            crash_points += 1
            step_index += 1
    assert crash_points >= 6  # events chunks, hour and day items of both subjects
