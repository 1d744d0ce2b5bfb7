"""Meter queries answered from the pre-aggregated counters: the use case and its folding.

The request is parsed in `requests.py` (`ParsedQuery`), the result rendered in `views.py`.

Each window is decomposed into the items that hold it (buckets.py): for count, sum and avg
meters, day items' hour slots and hour items' minute slots; for the others, aligned day, hour and
minute buckets. Consecutive items of one level are read with one Query per subject partition, so
the items read are bounded by the number of windows and days, not by events or minutes: a month
at PT1H is 31 day items per subject and dimension group.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.aws.dynamo import from_item, query_all
from shared.core.errors import InvalidInput
from shared.core.timeutil import (
    EARLIEST_INSTANT,
    EVENT_FUTURE_ALLOWANCE,
    Clock,
    ceil_minute,
    format_rfc3339,
)
from shared.customers.attribution import Attribution, CustomerRef
from shared.meters.models import Aggregation, Meter
from shared.usage.buckets import (
    LEVEL_LENGTH,
    LEVELS,
    MEMBER_LEVELS,
    SLOTS,
    bucket_code,
    decompose,
    parse_bucket_code,
    slot_of,
    slot_pieces,
)
from shared.usage.counters import (
    ADDITIVE,
    dims_hash,
    level_codes,
    member_codes,
    member_partition,
    partition,
    slot_codes,
)
from shared.usage.extract import Contribution
from shared.usage.filters import matches
from shared.usage.subjects import subjects_of as indexed_subjects
from shared.usage.tail import TailReader, Unflushed
from shared.usage.windows import count_windows, windows

MAX_WINDOWS = 50_000
MERGE_GAP = 4  # buckets


@dataclass
class ParsedQuery:
    start: datetime | None
    end: datetime | None
    granularity: str | None
    tz: ZoneInfo
    group_by: list[str]
    filters: dict[str, dict[str, Any]]
    subjects: list[str] | None  # None = every subject of the meter
    customer_ids: list[str] | None = None  # customer_id eq/in filter


@dataclass
class QueryResult:
    start: datetime | None
    end: datetime | None
    rows: list[dict[str, Any]]
    group_by: list[str]
    items_read: int = 0
    queries: int = 0
    unflushed: int = 0  # journaled contributions counted from the tail (tail.py)
    customers: dict[str, CustomerRef] = field(default_factory=dict)


@dataclass
class _Acc:
    count: int = 0
    total: Decimal = field(default_factory=Decimal)
    low: Decimal | None = None
    high: Decimal | None = None
    latest_key: str = ""
    latest_value: Decimal | None = None
    members: set[str] = field(default_factory=set)

    def add_item(self, item: dict[str, Any]) -> None:
        self.count += int(item.get("c", 0))
        self.total += Decimal(item.get("s", 0))
        for name, value in item.items():
            if name.startswith("mn#"):
                self.low = value if self.low is None else min(self.low, value)
            elif name.startswith("mx#"):
                self.high = value if self.high is None else max(self.high, value)
            elif name.startswith("lt#") and value > self.latest_key:
                self.latest_key, self.latest_value = value, item["lv#" + name[3:]]

    def add_slots(self, item: dict[str, Any], first: int, end: int) -> None:
        """Slots [first, end) of a slotted item (count, sum and avg meters)."""
        for slot in range(first, end):
            count, total = item.get(f"c{slot:02d}"), item.get(f"s{slot:02d}")
            if count is not None:
                self.count += int(count)
            elif total is not None:
                self.count += 1  # sum meters keep no slot counts: a slot's presence says it has events
            if total is not None:
                self.total += Decimal(total)

    def add_unflushed(self, c: Contribution) -> None:
        """One journaled contribution (tail.py): what a flush will add to the counter."""
        self.count += 1
        self.total += c.value
        self.low = c.value if self.low is None else min(self.low, c.value)
        self.high = c.value if self.high is None else max(self.high, c.value)
        if c.order_key > self.latest_key:
            self.latest_key, self.latest_value = c.order_key, c.value
        if c.unique is not None:
            self.members.add(c.unique)

    def add_members(self, item: dict[str, Any], rest: str) -> None:
        """A minute's member set (`u`), or one member item (hour, day, or a spilled minute value)."""
        if "u" in item:
            self.members.update(item["u"])
            self.count += len(item["u"])
        else:
            self.members.add(rest.split("#", 1)[1])
            self.count += 1


def format_value(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class UsageQueryService:
    def __init__(
        self,
        client: Any,
        usage_table: str,
        clock: Clock | None = None,
        attribution: Attribution | None = None,
        consistent: bool = False,
    ) -> None:
        self.client = client
        self.table = usage_table
        self.clock = clock or Clock()
        self.attribution = attribution
        # Strongly consistent reads for callers that must see writes just made (the entitlement
        # refresh right after a batch's counter writes); meter queries don't need them.
        self.consistent = consistent
        # Usage journaled but not flushed yet (tail.py): counted, so queries see it within seconds.
        self.tail = TailReader(client, usage_table)

    def subjects_of(self, meter: Meter) -> list[str]:
        """The subjects indexed for the meter's event type, with those the previous release indexed
        for the meter itself (subjects.py says why both). Some may have no usage on this meter
        (events its filters didn't count): their reads find no items and add no rows."""
        return indexed_subjects(self.client, self.table, meter)

    def _earliest(self, meter: Meter, subjects: list[str]) -> datetime | None:
        pk_of = member_partition if meter.aggregation == Aggregation.UNIQUE_COUNT else partition
        firsts = []
        for subject in subjects:
            resp = self.client.query(
                TableName=self.table,
                Limit=1,
                ProjectionExpression="sk",
                KeyConditionExpression="pk = :p AND begins_with(sk, :d)",
                ExpressionAttributeValues={":p": {"S": pk_of(meter.id, subject, "D", "")}, ":d": {"S": "D#"}},
            )
            if resp.get("Items"):
                firsts.append(parse_bucket_code(resp["Items"][0]["sk"]["S"].split("#")[1]))
        return min(firsts) if firsts else None

    def _subjects(self, meter: Meter, q: ParsedQuery) -> list[str]:
        subjects = q.subjects if q.subjects is not None else self.subjects_of(meter)
        if q.customer_ids is not None:
            # A customer's usage is the usage of every subject attributed to it (engine-rules §2.1).
            owned = self.attribution.subjects_of(q.customer_ids) if self.attribution else {}
            allowed = {s for subs in owned.values() for s in subs}
            subjects = [s for s in subjects if s in allowed] if q.subjects is not None else sorted(allowed)
        return subjects

    def run(self, meter: Meter, q: ParsedQuery) -> QueryResult:
        now = self.clock.now()
        end = q.end or ceil_minute(now + timedelta(seconds=1))
        if q.start is not None:
            self._check_window_count(q.start, end, q)  # on the requested range, before any read
        subjects = self._subjects(meter, q)
        # The unflushed tail is read before any counter (tail.py says why that makes it exact).
        unflushed = self.tail.read(self.consistent, {meter.id})
        if q.subjects is None and q.customer_ids is None:
            # A subject first seen in the tail isn't indexed yet (its flush indexes it).
            subjects = sorted({*subjects, *(u.contribution.subject for u in unflushed)})
        wanted = set(subjects)
        unflushed = [u for u in unflushed if u.contribution.subject in wanted]
        start = q.start
        if start is None:
            candidates = [u.contribution.minute for u in unflushed]
            found = self._earliest(meter, subjects) if subjects else None
            start = min([*candidates, found] if found is not None else candidates, default=None)
            if start is None or start >= end:
                return QueryResult(q.start, q.end, [], q.group_by)
            self._check_window_count(start, end, q)
        result = QueryResult(q.start or start, q.end or end, [], q.group_by)
        if not subjects:
            return result

        spans = [(start, end)] if q.granularity is None else list(self._windows(start, end, q))
        # No usage exists outside the accepted event times: don't decompose what can't hold any.
        first = max(start, EARLIEST_INSTANT)
        last = min(end, ceil_minute(now + EVENT_FUTURE_ALLOWANCE) + timedelta(minutes=1))
        # (level, bucket code) -> the windows it serves, with the slot range each one needs (None:
        # the whole item). A day item serves its 24 hour windows at PT1H.
        bucket_window: dict[tuple[str, str], list[tuple[int, tuple[int, int] | None]]] = {}
        slotted = meter.aggregation in ADDITIVE
        levels = MEMBER_LEVELS if meter.aggregation == Aggregation.UNIQUE_COUNT else LEVELS
        for idx, (ws, we) in enumerate(spans):
            if we <= first or ws >= last:
                continue
            a, b = max(ws, first), min(we, last)
            if slotted:
                for level, bstart, lo, hi in slot_pieces(a, b):
                    slots = None if (lo, hi) == (0, SLOTS[level]) else (lo, hi)
                    bucket_window.setdefault((level, bucket_code(bstart)), []).append((idx, slots))
            else:
                for level, bstart in decompose(a, b, levels):
                    bucket_window.setdefault((level, bucket_code(bstart)), []).append((idx, None))
        runs = self._runs(bucket_window)

        unique = meter.aggregation == Aggregation.UNIQUE_COUNT
        pk_of = member_partition if unique else partition

        def read(task: tuple[str, str, str, str]) -> list[dict[str, Any]]:
            subject, level, first, last = task
            return list(
                query_all(
                    self.client,
                    TableName=self.table,
                    KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                    ExpressionAttributeValues={
                        ":p": {"S": pk_of(meter.id, subject, level, first)},
                        ":a": {"S": f"{level}#{first}#"},
                        ":b": {"S": f"{level}#{last}#~"},
                    },
                    ConsistentRead=self.consistent,
                )
            )

        tasks = [(s, level, a, b) for s in subjects for level, a, b in runs]
        result.queries = len(tasks)
        groups: dict[tuple[int, tuple[tuple[str, str], ...]], _Acc] = {}
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(tasks)))) as pool:
            batches = list(pool.map(read, tasks))
        customers: dict[str, CustomerRef] = {}
        if "customer_id" in q.group_by and self.attribution:
            customers = self.attribution.resolve_subjects(subjects)
            result.customers = {ref.id: ref for ref in customers.values()}
        # (subject, level, bucket code, dims hash) -> the counter item as read: its `ap#<shard>`
        # positions say which unflushed contributions it holds already.
        counters: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for items in batches:
            result.items_read += len(items)
            for raw in items:
                self._fold(raw, bucket_window, q, groups, customers)
                if slotted and unflushed:  # only the tail asks which records an item holds
                    level, code, rest = raw["sk"]["S"].split("#", 2)
                    counters[(raw.get("sub", {}).get("S", ""), level, code, rest)] = raw
        for u in unflushed:
            self._fold_unflushed(u, meter.aggregation, bucket_window, counters, q, groups, customers)
        result.unflushed = len(unflushed)
        result.rows = self._rows(meter, spans, q, groups)
        return result

    def _fold_unflushed(
        self,
        u: Unflushed,
        aggregation: Aggregation,
        bucket_window: dict[tuple[str, str], list[tuple[int, tuple[int, int] | None]]],
        counters: dict[tuple[str, str, str, str], dict[str, Any]],
        q: ParsedQuery,
        groups: dict[tuple[int, tuple[tuple[str, str], ...]], _Acc],
        customers: dict[str, CustomerRef],
    ) -> None:
        """Add one journaled contribution to the windows that read the buckets it falls in, unless
        the counter item read there holds it already (count, sum, avg: not idempotent)."""
        c = u.contribution
        key = self._group_key(dict(c.dims), c.subject, q, customers)
        if key is None:
            return
        slotted = aggregation in ADDITIVE
        if slotted:
            codes = slot_codes(c.minute)
        elif aggregation == Aggregation.UNIQUE_COUNT:
            codes = member_codes(c.minute)
        else:
            codes = level_codes(c.minute)
        for level, code in codes:
            targets = bucket_window.get((level, code))
            if not targets:
                continue
            slot = slot_of(level, c.minute) if slotted else 0
            if slotted:
                item = counters.get((c.subject, level, code, dims_hash(c.dims)))
                if item is not None and item.get(f"ap#{u.shard}", {}).get("S", "") >= u.pos:
                    continue  # a flush applied it to this item
            for idx, slots in targets:
                if slots is None or slots[0] <= slot < slots[1]:
                    groups.setdefault((idx, key), _Acc()).add_unflushed(c)

    @staticmethod
    def _check_window_count(start: datetime, end: datetime, q: ParsedQuery) -> None:
        if q.granularity is not None and count_windows(start, end, q.granularity, q.tz) > MAX_WINDOWS:
            raise InvalidInput.field(
                "granularity", f"the range holds more than {MAX_WINDOWS} windows; narrow it"
            )

    def _windows(self, start: datetime, end: datetime, q: ParsedQuery) -> list[tuple[datetime, datetime]]:
        out = []
        for span in windows(start, end, q.granularity or "", q.tz):
            out.append(span)
            if len(out) > MAX_WINDOWS:
                raise InvalidInput.field(
                    "granularity", f"the range holds more than {MAX_WINDOWS} windows; narrow it"
                )
        return out

    @staticmethod
    def _runs(bucket_window: dict[tuple[str, str], Any]) -> list[tuple[str, str, str]]:
        """Runs of buckets of one level within one partition period, as (level, first, last)."""
        runs: list[tuple[str, str, str]] = []
        by_partition: dict[tuple[str, str], list[datetime]] = {}
        for level, code in bucket_window:
            by_partition.setdefault((level, partition("", "", level, code)), []).append(
                parse_bucket_code(code)
            )
        for (level, _), starts in by_partition.items():
            starts.sort()
            step = LEVEL_LENGTH[level]
            first = prev = starts[0]
            for t in starts[1:]:
                # Bridging a short gap costs a few extra items (skipped when folding) and saves a
                # request: a +05:30 day's 23 hours and the next day's continue in one Query.
                if t > prev + step * (MERGE_GAP + 1):
                    runs.append((level, bucket_code(first), bucket_code(prev)))
                    first = t
                prev = t
            runs.append((level, bucket_code(first), bucket_code(prev)))
        return runs

    def _fold(
        self,
        raw: dict[str, Any],
        bucket_window: dict[tuple[str, str], list[tuple[int, tuple[int, int] | None]]],
        q: ParsedQuery,
        groups: dict[tuple[int, tuple[tuple[str, str], ...]], _Acc],
        customers: dict[str, CustomerRef],
    ) -> None:
        level, code, rest = raw["sk"]["S"].split("#", 2)
        targets = bucket_window.get((level, code))
        if not targets:  # inside a run but covered at another level
            return
        item = from_item(raw)
        key = self._group_key(dict(item.get("d") or {}), item.get("sub", ""), q, customers)
        if key is None:
            return
        member = raw["pk"]["S"].startswith("U#")
        for idx, slots in targets:
            acc = groups.setdefault((idx, key), _Acc())
            if member:
                acc.add_members(item, rest)
            elif slots is None:
                acc.add_item(item)
            else:
                acc.add_slots(item, *slots)

    @staticmethod
    def _group_key(
        dims: dict[str, str], subject: str, q: ParsedQuery, customers: dict[str, CustomerRef]
    ) -> tuple[tuple[str, str], ...] | None:
        """The group a counter belongs to, or None when the query's filters exclude it."""
        for name, spec in q.filters.items():
            if not matches(spec, dims.get(name)):
                return None
        key_parts = []
        for name in q.group_by:
            if name == "subject":
                key_parts.append((name, subject))
            elif name == "customer_id":
                ref = customers.get(subject)
                key_parts.append((name, ref.id if ref else ""))
            else:
                key_parts.append((name, dims.get(name, "")))
        return tuple(key_parts)

    @staticmethod
    def _rows(
        meter: Meter,
        spans: list[tuple[datetime, datetime]],
        q: ParsedQuery,
        groups: dict[tuple[int, tuple[tuple[str, str], ...]], _Acc],
    ) -> list[dict[str, Any]]:
        rows = []
        for (idx, key), acc in sorted(groups.items(), key=lambda kv: kv[0]):
            if acc.count <= 0:
                continue
            value = _value(meter.aggregation, acc)
            ws, we = spans[idx]
            rows.append(
                {
                    "value": format_value(value),
                    "from": format_rfc3339(ws),
                    "to": format_rfc3339(we),
                    "dimensions": dict(key),
                }
            )
        return rows


def _value(aggregation: Aggregation, acc: _Acc) -> Decimal:
    if aggregation == Aggregation.COUNT:
        return Decimal(acc.count)
    if aggregation == Aggregation.AVG:
        return acc.total / acc.count
    if aggregation == Aggregation.MIN:
        return acc.low if acc.low is not None else Decimal(0)
    if aggregation == Aggregation.MAX:
        return acc.high if acc.high is not None else Decimal(0)
    if aggregation == Aggregation.LATEST:
        return acc.latest_value if acc.latest_value is not None else Decimal(0)
    if aggregation == Aggregation.UNIQUE_COUNT:
        return Decimal(len(acc.members))
    return acc.total
