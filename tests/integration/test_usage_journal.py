"""Usage written behind (shared/usage/journal.py): batches are journaled and flushed into the
counters once a shard's tail spans `flush_seconds` of traffic, or by the idle sweep. Proven against
the ground truth of test_exactly_once, with the handler killed after every write of every batch
(journal and flush writes included), retries bisected, instances swapped and sweeps racing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from functions.aggregate import handler as aggregate_handler
from shared.core.timeutil import Clock
from shared.usage.aggregator import Aggregator
from shared.usage.tail import TailReader
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


@contextmanager
def counters_only() -> Iterator[None]:
    """Queries as they read before tail.py: the counters alone, what the flushes wrote."""
    original = TailReader.read
    TailReader.read = lambda *_a, **_k: []  # type: ignore[method-assign]
    try:
        yield
    finally:
        TailReader.read = original  # type: ignore[method-assign]


def assert_flushed_and_seen(
    stack: Stack, meters: tuple[str, str], flushed: list[dict[str, Any]], journaled: list[dict[str, Any]]
) -> None:
    """The counters hold `flushed`; queries (counters + the unflushed tail) see all of `journaled`."""
    with counters_only():
        assert_matches_truth(stack, meters, flushed)
    assert_matches_truth(stack, meters, journaled)


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
    # Journaled, not flushed yet (the tail spans 0 s of traffic), yet queries see it.
    assert_flushed_and_seen(stack, meters, [], events_in(recs[:half], events))
    # 9 s later: still within the flush interval.
    agg.process(received_at({"Records": recs[half : half + 1]}, BASE + timedelta(seconds=9)))
    assert_flushed_and_seen(stack, meters, [], events_in(recs[: half + 1], events))
    # 10 s after the first: the tail is due, and this batch flushes all three.
    agg.process(received_at({"Records": recs[half + 1 :]}, BASE + timedelta(seconds=10)))
    counted = events_in(recs, events)
    assert_flushed_and_seen(stack, meters, counted, counted)


def test_a_quiet_shards_small_batch_flushes_at_once(stack: Stack, agg: Aggregator) -> None:
    """Under `busy_records` records a batch means little traffic: nothing to coalesce, so usage is
    counted at once (a single curl on `make run` shows in the next query)."""
    agg.busy_records = 50
    meters = setup_meters(stack)
    events = make_events(6)
    for batch in batches(stack, events, 100):
        agg.process(batch)
    assert_matches_truth(stack, meters, events)


def events_in(records: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if any(_is(e, r) for r in records)]


def _is(event: dict[str, Any], record: dict[str, Any]) -> bool:
    payload = orjson.loads(base64.b64decode(record["kinesis"]["data"]))
    return bool(payload["event"]["id"] == event["id"] and payload["event"]["source"] == event["source"])


def test_the_idle_sweep_flushes_a_shard_whose_traffic_stopped(stack: Stack, agg: Aggregator) -> None:
    meters = setup_meters(stack)
    events = make_events(30)
    for batch in batches(stack, events, 100):
        agg.process(batch)
    assert_flushed_and_seen(stack, meters, [], events)  # every tail is younger than 10 s of traffic
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH - 2))  # journaled less than 10 s ago
    assert_flushed_and_seen(stack, meters, [], events)
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH + 1))
    assert_flushed_and_seen(stack, meters, events, events)
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH + 200))  # again: nothing added
    assert_flushed_and_seen(stack, meters, events, events)


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
                    # Whatever the crash left (a flush half-applied: some counters moved, the
                    # flush state not), queries see each journaled record exactly once.
                    done = [
                        r
                        for b in todo[: i + any(n.startswith("journal") for n in seen)]
                        for r in b["Records"]
                    ]
                    try:
                        assert_matches_truth(stack, meters, events_in(done, events))
                    except AssertionError as failed:
                        raise AssertionError(f"query after a crash at {exc}") from failed
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


def test_a_flush_landing_between_the_tail_read_and_the_counter_reads_counts_each_record_once(
    stack: Stack,
) -> None:
    """A query reads the tail, then the counters. Here a flush runs in between, killed after each
    of its writes in turn (counters half-applied, flush state not moved) and then run whole: the
    counters read then hold some of the tail's records, which must be taken once, not twice."""
    original = TailReader.read
    run, crashed_at = 100, []
    while True:
        meters = run_meters(stack, run)
        events = run_events(run)
        a = fresh_instance()
        for batch in batches(stack, events, 100):
            a.process(batch)  # busy: journaled, none flushed
        flusher = fresh_instance()
        flusher.clock = FrozenClock(datetime.now(UTC) + timedelta(seconds=FLUSH + 61))
        kill_after, seen, crashed = run - 100, [], [False]

        def step(name: str, seen: list[str] = seen, at: int = kill_after) -> None:
            seen.append(name)
            if len(seen) == at + 1:
                raise Crash(name)

        def read_then_flush(
            self: TailReader,
            *args: Any,
            seen: list[str] = seen,
            flusher: Aggregator = flusher,
            crashed: list[bool] = crashed,
            step: Any = step,
            **kwargs: Any,
        ) -> Any:
            found = original(self, *args, **kwargs)
            if not seen:  # the first query of the run: a flush lands after its tail read
                try:
                    flusher.flush_due(step=step)
                except Crash as exc:
                    crashed[0] = True
                    crashed_at.append(str(exc))
            return found

        TailReader.read = read_then_flush  # type: ignore[method-assign]
        try:
            assert_matches_truth(stack, meters, events)
        except AssertionError as exc:
            raise AssertionError(f"flush killed after write {kill_after}: {crashed_at[-1:]}") from exc
        finally:
            TailReader.read = original  # type: ignore[method-assign]
        sweep(fresh_instance(), datetime.now(UTC) + timedelta(seconds=FLUSH + 61))
        assert_flushed_and_seen(stack, meters, events, events)
        run += 1
        if not crashed[0]:
            break
    assert {name.split(":")[0] for name in crashed_at} >= {"counter", "flushed"}, crashed_at


def test_every_aggregation_answers_the_same_from_the_tail_as_after_the_flush(
    stack: Stack, agg: Aggregator
) -> None:
    """unique_count, min, max and latest fold the tail in as it is (unions and extremes), avg,
    sum and count only what no counter holds: the same rows, at every granularity and in a zone
    whose hours are shifted, before the flush as after it."""
    ids = {}
    for aggregation in ("sum", "count", "avg", "unique_count", "min", "max", "latest"):
        body: dict[str, Any] = {
            "key": f"tail_{aggregation}",
            "name": aggregation,
            "aggregation": aggregation,
            "event_type": "tailed",
            "dimensions": {"method": "$.method"},
        }
        if aggregation != "count":
            body["value_property"] = "$.bytes"
        resp = stack.request("POST", "/meters", body)
        assert resp.status == 201, resp
        ids[aggregation] = resp.json()["id"]
    events = [{**e, "type": "tailed"} for e in make_events(50, seed=11)]
    early, late = events[:30], events[30:]
    for batch in batches(stack, early, 100):
        agg.process(batch)
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH + 61))  # some usage flushed...
    for batch in batches(stack, late, 100):
        agg.process(batch)  # ...the rest only journaled
    asks = [
        {"granularity": "PT1M", "group_by_dimensions": ["subject", "method"]},
        {"granularity": "PT1H", "group_by_dimensions": ["method"], "time_zone": "Asia/Kathmandu"},
        {"granularity": "P1D", "time_zone": "Asia/Kolkata"},
        {"group_by_dimensions": ["subject"], "filters": {"dimensions": {"method": {"eq": "GET"}}}},
    ]

    def answers() -> list[Any]:
        out = []
        for aggregation, meter_id in ids.items():
            for ask in asks:
                body = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", **ask}
                resp = stack.request("POST", f"/meters/{meter_id}/query", body)
                assert resp.status == 200, resp
                out.append((aggregation, ask, resp.json()["data"]))
        return out

    with counters_only():
        flushed_only = answers()
    before = answers()
    assert before != flushed_only  # the tail is counted...
    sweep(agg, datetime.now(UTC) + timedelta(seconds=FLUSH + 200))
    assert answers() == before  # ...exactly as the flush then counts it
