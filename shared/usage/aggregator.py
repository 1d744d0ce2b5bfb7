"""The aggregate function's work on one Kinesis batch (one shard, in order).

1. Decode records; the first record of each (source, id) in the batch is its candidate owner.
2. Read the dedupe claims for those keys (one BatchGetItem per 100). A claim records the
   stream position that owns the event: same position = this record is being replayed and still
   owns the event; another position = a true duplicate, never counted.
3. Evaluate each owned event on its own: a record that can't be metered (a time outside the
   accepted range, a value that isn't a number, a meter whose stored definition can't be read)
   is stored with validation issues and counted nowhere it can't be; its batch-mates are
   unaffected. Store the owned events with their issues (kept, never dropped): claims for the new
   ones, then hot blocks and the S3 archive object (shared/events/store.py). Only infrastructure
   errors (DynamoDB, S3, Kinesis) escape and fail the batch.
4. Journal the batch's contributions (one item, journal.py) and, when the shard's tail is due
   (it spans `flush_seconds` of traffic, holds `flush_records` contributions, or the shard is quiet:
   a batch under `busy_records` records), flush it: pre-aggregate every journaled
   contribution per counter item, write the unique_count day members that are new and the
   minutes' member sets (ADD: a union), and apply each counter once with a conditional update
   (see counters.py). Writes scale with distinct counters per flush, not per batch. Entitlements
   on what a flush touched refresh their access state after it.

Each step is safe to crash after and replay; `step` hooks let fault-injection tests kill the
handler between any two writes.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from aws_lambda_powertools import Logger

from shared.aws.dynamo import batch_get, batch_put, to_item
from shared.core.observability import SERVICE
from shared.core.timeutil import Clock, event_time_problem, format_rfc3339, parse_rfc3339
from shared.events.archive import Archive
from shared.events.store import EventStore, Owned
from shared.meters.repository import MeterRepository
from shared.usage.counters import CounterWriter, MemberSet, PendingCounter, encode_position, pre_aggregate
from shared.usage.extract import METER_UNAVAILABLE, Contribution, MeterIndex, ValidationIssue, contributions
from shared.usage.journal import Journal, Tail
from shared.usage.subjects import index_item, index_pk

logger = Logger(service=SERVICE, child=True)
# (event type, subject) pairs remembered as indexed: bounded, so a long-lived function with ever new
# subjects keeps a steady footprint (~100 B each); forgetting one only costs a read.
KNOWN_SUBJECTS_MAX = 50_000
Step = Callable[[str], None]
T = TypeVar("T")


@dataclass
class StreamRecord:
    shard: str
    sequence: str
    position: str
    event: dict[str, Any]
    ingested_at: str

    @property
    def key(self) -> str:
        return event_key(self.event["source"], self.event["id"])


class RecentSet(Generic[T]):
    """A set that forgets its least recently seen members beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[T, None] = OrderedDict()

    def seen(self, item: T) -> bool:
        if item in self._items:
            self._items.move_to_end(item)
            return True
        return False

    def add(self, item: T) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class BatchResult:
    owned: int = 0
    duplicates: int = 0
    stored: int = 0
    counters_written: int = 0
    counters_skipped: int = 0
    undecodable: list[str] = field(default_factory=list)
    with_issues: int = 0  # owned events stored with validation issues
    meter_errors: dict[str, str] = field(default_factory=dict)  # meter key -> why it was skipped


@dataclass
class Evaluation:
    """What one owned record amounts to: where it is indexed, what it adds, what is wrong with it."""

    time: datetime  # the event's time, or its ingestion time when that can't be used
    found: list[Contribution]
    issues: list[ValidationIssue]
    time_valid: bool = True


def event_key(source: str, event_id: str) -> str:
    return f"{source}\x1f{event_id}"


def decode_records(kinesis_event: dict[str, Any]) -> tuple[list[StreamRecord], list[str]]:
    records: list[StreamRecord] = []
    bad: list[str] = []
    for rec in kinesis_event.get("Records", []):
        seq = rec["kinesis"]["sequenceNumber"]
        shard = rec.get("eventID", "").split(":", 1)[0] or "shard"
        try:
            payload = orjson.loads(base64.b64decode(rec["kinesis"]["data"]))
            event = payload["event"]
            _ = event["source"], event["id"], event["type"], event["subject"], event["time"]
        except Exception:
            bad.append(seq)  # not ours: ingest only publishes validated events
            continue
        records.append(
            StreamRecord(shard, seq, encode_position(seq), event, payload.get("ingested_at") or "")
        )
    return records, bad


class Aggregator:
    def __init__(
        self,
        client: Any,
        events_table: str,
        usage_table: str,
        meters: MeterRepository,
        archive: Archive,
        clock: Clock | None = None,
        concurrency: int = 16,
        after_batch: Callable[[dict[str, dict[str, datetime]]], None] | None = None,
        flush_seconds: float | None = 0,
        flush_records: int = 20_000,
        busy_records: int = 50,
    ) -> None:
        self.client = client
        self.events_table = events_table
        self.meters = meters
        self.clock = clock or Clock()
        self.writer = CounterWriter(client, usage_table)
        self.usage_table = usage_table
        self._known_subjects = RecentSet[tuple[str, str]](KNOWN_SUBJECTS_MAX)
        # Called with {meter id: {subject: earliest minute}} once a batch's usage is journaled
        # (or applied): entitlements on those meters refresh their access state from it.
        self.after_batch = after_batch
        # Writes within a stage are independent items, so they go out in parallel (boto3 clients
        # are thread-safe); the stages stay ordered: events (claims) before usage.
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="agg-write")
        self.events = EventStore(client, events_table, archive, self._pool)
        # None: apply each batch directly, no journal (the DLQ replay: its records are older than
        # what the shard flushed). Otherwise a shard's tail is flushed once its oldest batch is
        # `flush_seconds` old (0: every batch) or it holds `flush_records` contributions.
        self.flush_seconds = flush_seconds
        self.flush_records = flush_records
        # A batch this small means the shard is quiet: little to coalesce, so its usage (and what
        # came before it) is flushed at once and stays fresh. Busy shards coalesce.
        self.busy_records = busy_records
        self.journal = Journal(client, usage_table)
        self._tails: dict[str, Tail] = {}
        self._registered: set[str] = set()

    def process(self, kinesis_event: dict[str, Any], step: Step | None = None) -> BatchResult:
        step = step or (lambda _name: None)
        result = BatchResult()
        records, result.undecodable = decode_records(kinesis_event)
        if result.undecodable:
            logger.error("undecodable stream records skipped", extra={"sequence_numbers": result.undecodable})
        if not records:
            return result

        # 1-2: ownership
        first: dict[str, StreamRecord] = {}
        for rec in records:
            first.setdefault(rec.key, rec)
        result.duplicates += len(records) - len(first)
        claims = self.events.claims(list(first))
        owned: list[StreamRecord] = []
        for key, rec in first.items():
            claim = claims.get(key)
            if claim is not None and claim.owner != f"{rec.shard}/{rec.position}":
                result.duplicates += 1
                continue
            owned.append(rec)
        result.owned = len(owned)

        # 3: contributions and stored events
        index = MeterIndex(self.meters.list_all())
        now = self.clock.now()
        parts: list[tuple[str, Contribution]] = []
        to_store: list[Owned] = []
        for rec in owned:
            ev = self.evaluate(rec, index, now)
            parts.extend((rec.position, c) for c in ev.found)
            result.with_issues += bool(ev.issues)
            for issue in ev.issues:
                if issue.code == METER_UNAVAILABLE and issue.meter_key is not None:
                    result.meter_errors.setdefault(issue.meter_key, issue.message)
            to_store.append(self._stored_event(rec, ev))
        if result.meter_errors:
            logger.error(
                "meters skipped: definition can't be evaluated", extra={"meters": result.meter_errors}
            )

        result.stored = self.events.store(to_store, claims, now, step)

        # 4: usage, journaled and flushed when due (or applied at once without a journal)
        shard = records[0].shard
        if self.flush_seconds is None:
            self._apply(parts, shard, step, result, index)
        else:
            # A request's records share one ingestion time: parse each distinct one once.
            got = [_ingested(at, now) for at in {r.ingested_at for r in records}]
            span = (records[0].position, records[-1].position)
            quiet = len(records) < self.busy_records
            self._journal(shard, span, parts, (min(got), max(got)), quiet, now, step, result, index)
        return result

    def flush_due(self, step: Step | None = None) -> BatchResult:
        """The idle-shard sweep (scheduled): flush every shard whose tail was journaled at least
        `flush_seconds` ago. A busy shard flushes itself; one whose burst just ended has no batch
        left to do it. Racing the shard's own processor is safe (journal.py)."""
        step = step or (lambda _name: None)
        result = BatchResult()
        if self.flush_seconds is None:
            return result
        now_ms = int(self.clock.now().timestamp() * 1000)
        for shard in self.journal.shards():
            tail = self.journal.load(shard)
            oldest = tail.oldest_ms()
            if oldest is not None and now_ms - oldest >= self.flush_seconds * 1000:
                self._flush(tail, step, result)
        return result

    def _journal(
        self,
        shard: str,
        span: tuple[str, str],
        parts: list[tuple[str, Contribution]],
        received: tuple[datetime, datetime],
        quiet: bool,
        now: datetime,
        step: Step,
        result: BatchResult,
        index: MeterIndex,
    ) -> None:
        try:
            tail = self._tails.get(shard)
            if tail is None or not self.journal.current(tail):
                tail = self._tails[shard] = self.journal.load(shard)
            if parts:
                if shard not in self._registered:
                    self.journal.register(shard)
                    self._registered.add(shard)
                for n, item in enumerate(self.journal.append(shard, *span, parts, now, received[0])):
                    tail.put(item)
                    step(f"journal:{n}")
            since = tail.since_ms()
            if since is None:
                return
            traffic_ms = received[1].timestamp() * 1000 - since  # how much traffic the tail holds
            full = tail.records() >= self.flush_records
            if quiet or full or traffic_ms >= (self.flush_seconds or 0) * 1000:
                self._flush(tail, step, result, index)
            # Access states count the journaled tail (queries read it: tail.py), so they refresh
            # for what this batch touched now, not when a flush writes it: quotas see usage within
            # the batching window. A flush changes no total, so it refreshes nothing.
            self._refresh(parts)
        except BaseException:
            self._tails.pop(shard, None)  # whatever happened, the next batch reads the table
            raise

    def _flush(self, tail: Tail, step: Step, result: BatchResult, index: MeterIndex | None = None) -> None:
        # Another flusher (the idle sweep, another instance) may have flushed what this instance
        # still holds: re-applying would be exact but would pay for the writes again.
        if self.journal.flushed(tail.shard) > tail.flushed:
            fresh = self.journal.load(tail.shard)
            tail.flushed, tail.items = fresh.flushed, fresh.items
        if not tail.items:
            return
        self._apply(tail.pending(), tail.shard, step, result, index, refresh=False)
        flushed = tail.last_position()
        self.journal.mark_flushed(tail.shard, flushed)
        step("flushed")
        tail.flushed, tail.items = flushed, []

    def _apply(
        self,
        parts: list[tuple[str, Contribution]],
        shard: str,
        step: Step,
        result: BatchResult,
        index: MeterIndex | None = None,
        refresh: bool = True,
    ) -> None:
        """Pre-aggregate contributions and write them: members (idempotent puts), minute sets
        (ADD), counters (conditional updates), then (`refresh`) the entitlements hook. `index`:
        the live meters, as the batch already read them (the idle sweep reads them here)."""
        if index is None:
            index = MeterIndex(self.meters.list_all())
        # One index item per (event type, subject), shared by the type's meters (subjects.py).
        type_of = {m.id: t for t, meters in index.by_type.items() for m in meters}
        # A meter deleted since its contributions were journaled is not counted any more.
        parts = [(p, c) for p, c in parts if c.meter_id in type_of]
        if not parts:
            return
        work = pre_aggregate(parts)
        new_subjects = self._index_subjects({(type_of[c.meter_id], c.subject) for _, c in parts})
        members = self._new_members(work.members, new_subjects, type_of)

        def put_members(start: int) -> None:
            batch_put(self.client, self.usage_table, members[start : start + 25])
            step(f"members:{start // 25}")

        list(self._pool.map(put_members, range(0, len(members), 25)))

        def add_members(numbered: tuple[int, MemberSet]) -> None:
            self.writer.add_members(numbered[1])
            step(f"memberset:{numbered[0]}")

        list(self._pool.map(add_members, enumerate(work.member_sets.values())))
        current = self.writer.prefetch(work.counters.values())

        def apply(numbered: tuple[int, tuple[tuple[str, str], PendingCounter]]) -> bool:
            n, (key, counter) = numbered
            written = self.writer.apply(counter, shard, current.get(key, {}))
            step(f"counter:{n}")
            return written

        outcomes = list(self._pool.map(apply, enumerate(work.counters.items())))
        result.counters_written += sum(outcomes)
        result.counters_skipped += len(outcomes) - sum(outcomes)
        if refresh:
            self._refresh(parts)

    def _refresh(self, parts: list[tuple[str, Contribution]]) -> None:
        """The entitlements hook, with {meter id: {subject: earliest minute}} of `parts`."""
        if self.after_batch is None or not parts:
            return
        touched: dict[str, dict[str, datetime]] = {}
        for _, c in parts:
            subjects = touched.setdefault(c.meter_id, {})
            subjects[c.subject] = min(c.minute, subjects.get(c.subject, c.minute))
        self.after_batch(touched)

    def evaluate(self, rec: StreamRecord, index: MeterIndex, now: datetime) -> Evaluation:
        """Pure (no I/O), so any failure here is this record's own: it becomes an issue, never
        a failed batch. Judged against the record's ingestion time, so a replay decides alike."""
        received = _ingested(rec.ingested_at, now)
        raw_time = rec.event.get("time")
        try:
            event_time = parse_rfc3339(raw_time)
            problem = event_time_problem(event_time, received)
        except ValueError as exc:
            problem = str(exc)
        if problem:
            issue = ValidationIssue(
                "invalid_time", f"invalid event: time {problem}", attributes=(("time", str(raw_time)[:64]),)
            )
            return Evaluation(received, [], [issue], time_valid=False)
        try:
            found, issues = contributions(rec.event, event_time, index)
        except Exception as exc:  # pure evaluation, no I/O: the failure is this record's own
            logger.warning("event can't be evaluated", extra={"key": rec.key, "error": repr(exc)})
            return Evaluation(
                event_time, [], [ValidationIssue("invalid_event", f"invalid event: {exc!r}"[:300])]
            )
        return Evaluation(event_time, found, issues)

    def _stored_event(self, rec: StreamRecord, ev: Evaluation) -> Owned:
        issues = list(ev.issues)
        event = rec.event
        try:
            orjson.dumps(event)
        except TypeError as exc:  # nested deeper than orjson writes (254); ingest refuses these
            event = {**rec.event, "data": None}
            issues.append(ValidationIssue("invalid_data", f"invalid event: data can't be stored ({exc})"))
        record: dict[str, Any] = {
            "e": event,
            # The index time: the event's own, or its ingestion time when that can't be used
            # (the event keeps its time as sent).
            "t": str(rec.event["time"]) if ev.time_valid else format_rfc3339(ev.time),
            "i": rec.ingested_at,
        }
        if issues:
            record["v"] = [i.to_api() for i in issues]
        return Owned(
            rec.key,
            rec.shard,
            rec.sequence,
            f"{rec.shard}/{rec.position}",
            ev.time.astimezone(UTC).date(),
            record,
        )

    def _new_members(
        self,
        members: dict[tuple[str, str], dict[str, Any]],
        new_subjects: set[tuple[str, str]],
        type_of: dict[str, str],
    ) -> list[dict[str, Any]]:
        """The hour and day unique_count members not stored yet, as items. Most members of a busy
        meter exist already (a user seen earlier in the hour or day), and an eventually consistent
        read costs a tenth of a write's price: ask first. That is safe: a member is never deleted,
        so a stale read can only say "missing" for one that exists, and re-putting a member is a
        no-op. (Minute values go into one set item per minute instead, see counters.py.)"""
        if not members:
            return []
        # A subject first indexed for its event type by this batch has no members yet on any meter
        # of that type (the index item is written before any member): nothing to ask. A stale index
        # read, or a subject the previous release indexed per meter, only makes that a no-op put.
        asked = [
            key
            for key, m in members.items()
            if (type_of[key[0][2:].split("#", 1)[0]], m["sub"]) not in new_subjects
        ]
        found = batch_get(
            self.client,
            self.usage_table,
            [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in asked],
            consistent=False,
            projection="pk, sk",
        )
        existing = {(i["pk"]["S"], i["sk"]["S"]) for i in found}
        return [to_item(m) for key, m in members.items() if key not in existing]

    def _index_subjects(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Write a subject-index item only the first time an (event type, subject) is seen: the
        bounded in-memory set answers for recent subjects, an eventually consistent read for the
        rest (an index item is never deleted, and re-putting one is a no-op). Returns the pairs
        indexed now."""
        unknown = sorted(p for p in pairs if not self._known_subjects.seen(p))
        if not unknown:
            return set()
        found = batch_get(
            self.client,
            self.usage_table,
            [{"pk": {"S": index_pk(event_type)}, "sk": {"S": subject}} for event_type, subject in unknown],
            consistent=False,
            projection="pk, sk",
        )
        existing = {(i["pk"]["S"], i["sk"]["S"]) for i in found}
        new = [(t, s) for t, s in unknown if (index_pk(t), s) not in existing]
        batch_put(self.client, self.usage_table, [index_item(t, s) for t, s in new])
        for pair in unknown:
            self._known_subjects.add(pair)
        return set(new)


def _ingested(value: str, fallback: datetime) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return fallback
