"""Usage written behind (shared/usage/journal.py): batches are journaled and flushed into the
counters once a shard's tail spans `flush_seconds` of traffic, or by the idle sweep. Proven against
the ground truth of test_exactly_once, with the handler killed after every write of every batch
(journal and flush writes included), retries bisected, instances swapped and sweeps racing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from functions.aggregate import handler as aggregate_handler
from shared.core.timeutil import Clock
from shared.usage.aggregator import Aggregator
from tests.integration.test_exactly_once import (
    Crash,
    assert_matches_truth,
    make_events,
    setup_meters,
)
from tests.support.harness import Stack

FLUSH = 10.0
BASE = datetime(2026, 3, 1, 12, tzinfo=UTC)


class FrozenClock(Clock):
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


@pytest.fixture
def agg(stack: Stack) -> Iterator[Aggregator]:
    a = aggregate_handler.aggregator()
    a.flush_seconds, a.busy_records = FLUSH, 0  # tiny test batches count as busy
    yield a
    a.flush_seconds, a.busy_records = 0, 50


def fresh_instance() -> Aggregator:
    """Another execution environment of the function: nothing in memory."""
    aggregate_handler.aggregator.cache_clear()
    a = aggregate_handler.aggregator()
    a.flush_seconds, a.busy_records = FLUSH, 0  # tiny test batches count as busy
    return a


def received_at(batch: dict[str, Any], t: datetime) -> dict[str, Any]:
    """The batch as if ingest had received its records at `t` (the tail's span is ingestion time)."""
    records = []
    for rec in batch["Records"]:
        payload = orjson.loads(base64.b64decode(rec["kinesis"]["data"]))
        payload["ingested_at"] = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        data = base64.b64encode(orjson.dumps(payload)).decode()
        records.append({**rec, "kinesis": {**rec["kinesis"], "data": data}})
    return {"Records": records}


def batches(stack: Stack, events: list[dict[str, Any]], per_batch: int, gap: int = 4) -> list[dict[str, Any]]:
    """Every shard's records in batches of `per_batch`, a shard's batches received `gap` s apart
    (shard by shard: the first shard's batches come first)."""
    assert stack.ingest(events).status == 202
    out = []
    for shard_batch in stack.pending_batches():
        recs = shard_batch["Records"]
        for n, i in enumerate(range(0, len(recs), per_batch)):
            at = BASE + timedelta(seconds=gap * n)
            out.append(received_at({"Records": recs[i : i + per_batch]}, at))
    return out


def sweep(a: Aggregator, at: datetime) -> None:
    a.clock = FrozenClock(at)
    a.flush_due()


def shard_of(batch: dict[str, Any]) -> str:
    return str(batch["Records"][0]["eventID"].split(":", 1)[0])


def test_usage_waits_in_the_journal_until_the_tail_spans_flush_seconds(stack: Stack, agg: Aggregator) -> None:
    meters = setup_meters(stack)
    events = make_events(40)
    assert stack.ingest(events).status == 202
    (first, *_rest) = stack.pending_batches()
    recs = first["Records"]
    half = len(recs) // 2
    early = received_at({"Records": recs[:half]}, BASE)
    agg.process(early)
    # Journaled, not counted yet: the tail spans 0 s of traffic.
    assert_matches_truth(stack, meters, [])
    # 9 s later: still within the flush interval.
    agg.process(received_at({"Records": recs[half : half + 1]}, BASE + timedelta(seconds=9)))
    assert_matches_truth(stack, meters, [])
    # 10 s after the first: the tail is due, and this batch flushes all three.
    agg.process(received_at({"Records": recs[half + 1 :]}, BASE + timedelta(seconds=10)))
    counted = [e for e in events if any(_is(e, r) for r in recs)]
    assert_matches_truth(stack, meters, counted)


def test_a_quiet_shards_small_batch_flushes_at_once(stack: Stack, agg: Aggregator) -> None:
    """Under `busy_records` records a batch means little traffic: nothing to coalesce, so usage is
    counted at once (a single curl on `make run` shows in the next query)."""
    agg.busy_records = 50
    meters = setup_meters(stack)
    events = make_events(6)
    for batch in batches(stack, events, 100):
        agg.process(batch)
    assert_matches_truth(stack, meters, events)


def _is(event: dict[str, Any], record: dict[str, Any]) -> bool:
    payload = orjson.loads(base64.b64decode(record["kinesis"]["data"]))
    return bool(payload["event"]["id"] == event["id"] and payload["event"]["source"] == event["source"])


def test_the_idle_sweep_flushes_a_shard_whose_traffic_stopped(stack: Stack, agg: Aggregator) -> None:
    meters = setup_meters(stack)
    events = make_events(30)
    for batch in batches(stack, events, 100):
        agg.process(batch)
    assert_matches_truth(stack, meters, [])  # every shard's tail is younger than 10 s of traffic
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH - 2))  # journaled less than 10 s ago
    assert_matches_truth(stack, meters, [])
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH + 1))
    assert_matches_truth(stack, meters, events)
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH + 200))  # again: nothing added
    assert_matches_truth(stack, meters, events)


def run_meters(stack: Stack, run: int) -> tuple[str, str]:
    """Run `run`'s own meters on its own event type, so runs share one stack untouched."""
    common = {"event_type": f"request_{run}", "dimensions": {"method": "$.method"}}
    ids = []
    for key, extra in (
        (f"bytes_{run}", {"aggregation": "sum", "value_property": "$.bytes"}),
        (f"requests_{run}", {"aggregation": "count"}),
    ):
        resp = stack.request("POST", "/meters", {"key": key, "name": key, **extra, **common})
        assert resp.status == 201, resp
        ids.append(resp.json()["id"])
    return ids[0], ids[1]


def run_events(run: int) -> list[dict[str, Any]]:
    events = make_events(24, seed=run)
    return [{**e, "type": f"request_{run}", "source": f"{e['source']}-{run}"} for e in events]


def test_crash_after_every_write_of_every_batch_with_the_tail_written_behind(stack: Stack) -> None:
    """Batches of 2 records, 6 s apart, so a shard's third batch flushes. Each run kills one
    batch right after one of its writes (journal item, members, counters, flush state...), then
    Lambda retries it on a fresh instance, bisected and whole; the sweep flushes the last tail.
    Every level must match the truth after each run."""
    run = 0
    crashed_at: list[str] = []
    for target in range(3):
        step_index = 0
        while True:
            meters = run_meters(stack, run)
            events = run_events(run)
            todo = batches(stack, events, 2, gap=6)
            assert shard_of(todo[0]) == shard_of(todo[2])  # the first shard has three batches
            a = fresh_instance()
            crashed = False
            for i, batch in enumerate(todo):
                if i != target:
                    a.process(batch)
                    continue
                seen: list[str] = []

                def step(name: str, seen: list[str] = seen, at: int = step_index) -> None:
                    seen.append(name)
                    if len(seen) == at + 1:
                        raise Crash(name)

                try:
                    a.process(batch, step=step)
                except Crash as exc:
                    crashed = True
                    crashed_at.append(str(exc))
                    a = fresh_instance()
                    recs = batch["Records"]
                    a.process({"Records": recs[: len(recs) // 2]})  # bisected, then whole
                    a.process(batch)
            sweep(a, datetime.now(UTC) + timedelta(seconds=FLUSH + 61))
            try:
                assert_matches_truth(stack, meters, events)
            except AssertionError as exc:
                raise AssertionError(
                    f"batch {target} killed after write {step_index}: {crashed_at[-1:]}"
                ) from exc
            run += 1
            if not crashed:
                break
            step_index += 1
    # Killed after journaling, after a flush's members and counters, and after its state moved.
    kinds = {name.split(":")[0] for name in crashed_at}
    assert {"journal", "counter", "flushed"} <= kinds, kinds
    assert len(crashed_at) >= 20


def test_a_stale_instance_and_a_racing_sweep_count_each_record_once(stack: Stack) -> None:
    meters = setup_meters(stack)
    events = make_events(60, seed=3)
    todo = batches(stack, events, 4)
    a = fresh_instance()
    # Instance A takes the first batches of a shard, instance B the next ones, then A again with
    # its memory of the tail now out of date; the sweep flushes in between.
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for batch in todo:
        by_shard.setdefault(shard_of(batch), []).append(batch)
    for shard_batches in by_shard.values():
        a.process(shard_batches[0])
        b = fresh_instance()
        for batch in shard_batches[1:3]:
            b.process(batch)
        sweep(b, datetime.now(UTC) + timedelta(seconds=FLUSH + 61))
        for batch in shard_batches[3:]:
            a.process(batch)
    sweep(a, datetime.now(UTC) + timedelta(seconds=FLUSH + 61))
    assert_matches_truth(stack, meters, events)


class LambdaContext:
    def __init__(self, seconds_left: float) -> None:
        self.function_name = "meterline-aggregate"
        self.memory_limit_in_mb = 512
        self.function_version = "$LATEST"
        self.aws_request_id = "req-1"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:meterline-aggregate"
        self.left = seconds_left

    def get_remaining_time_in_millis(self) -> int:
        return int(self.left * 1000)


def test_the_scheduled_invocation_sweeps_every_few_seconds_within_its_minute(
    stack: Stack, agg: Aggregator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EventBridge fires once a minute; the invocation sweeps every SWEEP_EVERY seconds for
    SWEEP_FOR (sleeps recorded here, not slept), and stops early when Lambda's time runs short."""
    calls: list[float] = []
    monkeypatch.setattr(aggregate_handler, "sleep", calls.append)
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(aggregate_handler, "monotonic", lambda: float(next(clock)))
    aggregate_handler.lambda_handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext(300)
    )
    assert calls == [aggregate_handler.SWEEP_EVERY] * 9  # ten sweeps over 50 s
    calls.clear()
    aggregate_handler.lambda_handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext(12)
    )
    assert calls == []  # too little time left for another pass
