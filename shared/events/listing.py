"""`GET /events`: list stored events in one of three orders with opaque cursors.

Where events come from. The events table keeps the recent stored events as compressed blocks
(blocks.py: one per aggregator batch and UTC hour, kept `HOT_WINDOW` = 33 days after they were
stored). Older events are in the S3 archive only (queried with Athena), so a window reaching back
further than that lists only the events stored within it (an old event time stored recently is
here; an event stored 40 days ago is not).

The walk. Each order (`time`, `ingested_at`, `stored_at`) has an index with one entry per block:
partition = one UTC day, sort key = the block's lowest `<instant>#<event key>`, projecting its
highest one. A listing walks the days of its window in the requested direction; within a day it
reads entries in sort-key order and opens (BatchGetItem) only the blocks that can hold the next
event: a block never spans more than an hour of its order, so once the next unread entry starts
an hour past the current event (descending: its hour ends at or before it), no unread block can
come first. Events come out in exact order with the event key as tie-breaker; a copy of an event
(a replayed batch cut differently, see store.py) has the same sort key and is dropped. Filters
the index can't express (id, source, subject, type, customer, the other two instants) are applied
to each event as it comes out. The walk stops as soon as it has `size + 1` matches (the extra one
only says there is a next page).

The window. A range filter on the field being sorted by bounds the days walked. A missing lower
bound defaults to `DEFAULT_WINDOW` (32 days) before the upper bound or now; a missing upper bound
is now (plus one day for `time`, whose events may be stamped slightly in the future, and a few
minutes of clock skew for the other two). `time` never goes back further than the retention. To
list older events, pass a lower bound, e.g. `filter[time][gte]=...`.

Budgets. One request reads at most `max_scanned` events and spends at most `max_seconds`
walking. When a budget runs out before the page is full, the (possibly short or empty) page has a
`next` link that resumes exactly where the walk stopped, so sparse filters over long windows page
through instead of timing out.

Cursors are positions (a sort key, or a day boundary after an exhausted budget), not offsets, so
new events never shift pages. Customers are attributed when the page is read, not when stored.
"""

from __future__ import annotations

import heapq
import itertools
import time as monotime
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from shared.aws.dynamo import batch_get
from shared.core.timeutil import Clock, parse_rfc3339
from shared.events.blocks import BLOCK_SPAN, ORDERS, block_records, listed, sort_key
from shared.events.keys import sortable
from shared.events.models import Cursor, EventPage, ListedEvent, ListQuery

DEFAULT_WINDOW = timedelta(days=32)
TIME_FUTURE_ALLOWANCE = timedelta(days=1)
CLOCK_SKEW = timedelta(minutes=5)
MAX_PREFETCH_DAYS = 4
MAX_SCANNED = 5000
MAX_SECONDS = 3.0
ENTRIES_PER_QUERY = 100
MAX_BLOCKS_PER_READ = 16

_POOL = ThreadPoolExecutor(max_workers=MAX_PREFETCH_DAYS, thread_name_prefix="events-list")


class CustomerRefLike(Protocol):
    id: str


class AttributionLike(Protocol):
    def resolve_subjects(self, subjects: Iterable[str]) -> dict[str, Any]: ...

    def subjects_of(self, customer_ids: Iterable[str]) -> dict[str, list[str]]: ...


@dataclass(frozen=True)
class Bound:
    key: str
    inclusive: bool


def _tighter_lower(a: Bound, b: Bound) -> Bound:
    if a.key != b.key:
        return a if a.key > b.key else b
    return a if not a.inclusive else b


def _tighter_upper(a: Bound, b: Bound) -> Bound:
    if a.key != b.key:
        return a if a.key < b.key else b
    return a if not a.inclusive else b


def _day_start(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000000Z"


@dataclass
class _Walk:
    """Where a walk stopped when a budget ran out (an exclusive position), else None."""

    resume: str | None = None
    scanned: int = 0


class EventLister:
    def __init__(
        self,
        client: Any,
        table: str,
        attribution: AttributionLike,
        retention_days: int = 730,
        clock: Clock | None = None,
        max_scanned: int = MAX_SCANNED,
        max_seconds: float = MAX_SECONDS,
        max_days: int | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.attribution = attribution
        self.retention = timedelta(days=retention_days)
        self.clock = clock or Clock()
        self.max_scanned = max_scanned
        self.max_seconds = max_seconds
        self.max_days = max_days

    # -- entry point -------------------------------------------------------------------------------
    def run(self, q: ListQuery) -> EventPage:
        now = self.clock.now()
        backward = q.before is not None
        cursor = q.before or q.after
        ascending = (not q.desc) != backward  # the direction this request walks in
        found: list[tuple[str, dict[str, Any]]] = []
        walk = _Walk()
        bounds = self._bounds(q, now, ascending, cursor)
        subjects_in, subjects_out = self._customer_subjects(q)
        if bounds is not None and subjects_in != set():
            need = q.size + 1
            filtering = bool(q.strings or q.customer or set(q.ranges) - {q.order})
            epoch = int(now.timestamp())
            # Filtered walks skip most events: open more blocks per read.
            items = self._walk(q.order, ascending, *bounds, need * (8 if filtering else 1), epoch, walk)
            for sk, item in items:
                if self._accepts(item, q, subjects_in, subjects_out):
                    found.append((sk, item))
                    if len(found) == need:
                        break
            items.close()
        more = len(found) > q.size
        resume = None if more else walk.resume
        page = found[: q.size]
        if backward:
            page.reverse()
        first_sk = page[0][0] if page else None
        last_sk = page[-1][0] if page else None

        def at(key: str | None, inclusive: bool = False) -> Cursor:
            return Cursor(key, q.order, q.desc, inclusive)

        next_at: Cursor | None = None
        prev_at: Cursor | None = None
        if not backward:
            if more:
                next_at = at(last_sk)
            elif resume:
                next_at = at(resume)
            if cursor is not None:
                prev_at = at(first_sk) if page else at(cursor.key, not cursor.inclusive)
        else:
            assert cursor is not None
            if more:
                prev_at = at(first_sk)
            elif resume:
                prev_at = at(resume)
            if cursor.key is not None:
                next_at = at(last_sk) if page else at(cursor.key, not cursor.inclusive)
        events = self._attribute([item for _, item in page])
        return EventPage(events, next_at, prev_at, at(None))

    # -- window --------------------------------------------------------------------------------
    def _bounds(
        self, q: ListQuery, now: datetime, ascending: bool, cursor: Cursor | None
    ) -> tuple[Bound, Bound] | None:
        """The [lower, upper] sort keys this request walks between, or None when nothing can match."""
        rng = q.ranges.get(q.order)
        if any(r.empty for r in q.ranges.values()):
            return None
        lower_t, upper_t = rng.index_span() if rng else (None, None)
        ceiling = now + (TIME_FUTURE_ALLOWANCE if q.order == "time" else CLOCK_SKEW)
        if upper_t is None or (q.order != "time" and upper_t > ceiling):
            upper_t = ceiling
        if lower_t is None:
            lower_t = min(upper_t, now) - DEFAULT_WINDOW
        if q.order == "time":
            lower_t = max(lower_t, now - self.retention)
        if lower_t >= upper_t:
            return None
        lower, upper = Bound(sortable(lower_t), True), Bound(sortable(upper_t), False)
        if cursor is not None and cursor.key is not None:
            position = Bound(cursor.key, cursor.inclusive)
            if ascending:
                lower = _tighter_lower(lower, position)
            else:
                upper = _tighter_upper(upper, position)
        if lower.key > upper.key or (lower.key == upper.key and not (lower.inclusive and upper.inclusive)):
            return None
        return lower, upper

    def _customer_subjects(self, q: ListQuery) -> tuple[set[str] | None, set[str] | None]:
        """(subjects an event must have, subjects it must not have) for `filter[customer_id]`."""
        if q.customer is None:
            return None, None
        mapping = self.attribution.subjects_of(q.customer.ids)
        subjects = {s for subjects in mapping.values() for s in subjects}
        return (None, subjects) if q.customer.op == "neq" else (subjects, None)

    # -- the walk ------------------------------------------------------------------------------------
    def _walk(
        self,
        order: str,
        ascending: bool,
        lower: Bound,
        upper: Bound,
        need: int,
        epoch: int,
        walk: _Walk,
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        pk_attr, sk_attr, hi_attr, prefix, index = ORDERS[order]
        start, end = (lower, upper) if ascending else (upper, lower)
        first_day, last_day = date.fromisoformat(start.key[:10]), date.fromisoformat(end.key[:10])
        step = timedelta(days=1 if ascending else -1)
        total_days = abs((last_day - first_day).days) + 1
        deadline = monotime.monotonic() + self.max_seconds
        wrap = (lambda k: k) if ascending else _Reversed

        def ahead(a: str, b: str) -> bool:
            return a < b if ascending else a > b

        def outside(sk: str) -> bool:
            """Before the start or past the end of this walk."""
            if ahead(sk, start.key) or (sk == start.key and not start.inclusive):
                return True
            return ahead(end.key, sk) or (sk == end.key and not end.inclusive)

        def query(day: date) -> dict[str, Any]:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": index,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeNames": {"#pk": pk_attr},
                "ExpressionAttributeValues": {":pk": {"S": f"{prefix}#{day.isoformat()}"}},
                "ScanIndexForward": ascending,
                "Limit": ENTRIES_PER_QUERY,
            }
            if day == first_day:
                # Ascending: a block that starts before the start's hour ends before the start.
                # Descending: a block that starts after the start holds nothing before it.
                op, key = (">=", _hour_floor(start.key)) if ascending else ("<=", start.key)
                kwargs["KeyConditionExpression"] += f" AND #sk {op} :sk"
                kwargs["ExpressionAttributeNames"]["#sk"] = sk_attr
                kwargs["ExpressionAttributeValues"][":sk"] = {"S": key}
            return kwargs

        def entries(kwargs: dict[str, Any], first: Future[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            page = first.result()
            while True:
                yield from page.get("Items", [])
                last = page.get("LastEvaluatedKey")
                if not last:
                    return
                page = self.client.query(ExclusiveStartKey=last, **kwargs)

        def submit(day: date) -> tuple[dict[str, Any], Future[dict[str, Any]]]:
            kwargs = query(day)
            return kwargs, _POOL.submit(self.client.query, **kwargs)

        def day_events(day_entries: Iterator[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
            """One day's events in walk order, opening blocks only when one may hold the next."""
            counter = itertools.count()
            pending: list[tuple[Any, int, dict[str, Any]]] = []  # unopened, by their first key
            events: list[tuple[Any, int, str, dict[str, Any]]] = []
            upcoming: dict[str, Any] | None = None  # the next unread entry
            unread_bound: str | None = None  # no unread block holds an event ahead of this

            def read_next() -> None:
                nonlocal upcoming, unread_bound
                for entry in day_entries:
                    lo = entry[sk_attr]["S"]
                    hi = entry[hi_attr]["S"]
                    if ascending and (lo > end.key or (lo == end.key and not end.inclusive)):
                        break  # starts past the end: so do all later ones
                    if not ascending and _hour_ceiling(lo) <= end.key:
                        break  # its hour ends before the end: so do all later ones
                    expires = entry.get("expires_at")
                    if expires is not None and int(expires["N"]) <= epoch:
                        continue  # expired; DynamoDB deletes TTL items lazily
                    first, last = (lo, hi) if ascending else (hi, lo)
                    if ahead(last, start.key) or ahead(end.key, first):
                        continue  # entirely outside the walk
                    upcoming = entry
                    unread_bound = lo if ascending else _hour_ceiling(lo)
                    return
                upcoming, unread_bound = None, None

            def clear_of_unread(sk: str) -> bool:
                if unread_bound is None:
                    return True
                return sk < unread_bound if ascending else sk >= unread_bound

            def hold_upcoming() -> None:
                assert upcoming is not None
                entry = upcoming
                entry["_first"] = entry[sk_attr]["S"] if ascending else entry[hi_attr]["S"]
                heapq.heappush(pending, (wrap(entry["_first"]), next(counter), entry))
                read_next()

            def open_pending() -> None:
                # Blocks are read in batches: the ones needed now and, already known, enough of
                # the following ones to fill the page (their events wait in the heap).
                while (
                    upcoming is not None
                    and len(pending) < MAX_BLOCKS_PER_READ
                    and sum(_count(e[2]) for e in pending) < need
                ):
                    hold_upcoming()
                chosen = [heapq.heappop(pending)[2]]
                events_in = _count(chosen[0])
                while pending and len(chosen) < MAX_BLOCKS_PER_READ and events_in < need:
                    chosen.append(heapq.heappop(pending)[2])
                    events_in += _count(chosen[-1])
                keys = [{"pk": e["pk"]} for e in chosen]
                for block in batch_get(self.client, self.table, keys, consistent=False, projection="pk, b"):
                    for rec in block_records(block):
                        sk = sort_key(rec, order)
                        if not outside(sk):
                            heapq.heappush(events, (wrap(sk), next(counter), sk, rec))

            read_next()
            while True:
                pending_first = pending[0][2]["_first"] if pending else None
                if events:
                    top = events[0][2]
                    if (pending_first is None or ahead(top, pending_first)) and clear_of_unread(top):
                        yield top, heapq.heappop(events)[3]
                        continue
                # An unopened or an unread block may hold what comes next.
                if pending_first is not None and (
                    unread_bound is None or pending_first == unread_bound or clear_of_unread(pending_first)
                ):
                    open_pending()
                elif upcoming is not None:
                    hold_upcoming()
                else:  # nothing pending or unread, so nothing was held back either
                    return

        prefetched: dict[int, tuple[dict[str, Any], Future[dict[str, Any]]]] = {}
        ahead_days = 1
        last_sk: str | None = None
        for n in range(total_days):
            day = first_day + step * n
            if n and (monotime.monotonic() >= deadline or (self.max_days is not None and n >= self.max_days)):
                # Resume at the start of this day: ascending, everything after the previous day;
                # descending, everything before the day just finished.
                walk.resume = _day_start(day if ascending else day - step)
                return
            for m in range(n, min(n + ahead_days + 1, total_days)):
                if m not in prefetched:
                    prefetched[m] = submit(first_day + step * m)
            kwargs, first = prefetched.pop(n)
            for sk, rec in day_events(entries(kwargs, first)):
                if sk == last_sk:
                    continue  # a copy of the event just listed (store.py)
                last_sk = sk
                walk.scanned += 1
                yield sk, listed(rec)
                if walk.scanned >= self.max_scanned or (
                    walk.scanned % 256 == 0 and monotime.monotonic() >= deadline
                ):
                    walk.resume = sk
                    return
            if n:  # (the first day is often, for `time` always, tomorrow's: no sign of sparseness)
                ahead_days = min(ahead_days * 2, MAX_PREFETCH_DAYS)

    # -- per item ------------------------------------------------------------------------------------
    @staticmethod
    def _accepts(
        item: dict[str, Any],
        q: ListQuery,
        subjects_in: set[str] | None,
        subjects_out: set[str] | None,
    ) -> bool:
        subject = item["subject"]
        if subjects_in is not None and subject not in subjects_in:
            return False
        if subjects_out is not None and subject in subjects_out:
            return False
        if q.strings:
            source, _, event_id = item["pk"].partition("\x1f")
            values = {"id": event_id, "source": source, "subject": subject, "type": item["type"]}
            if not all(f.matches(values[f.field]) for f in q.strings):
                return False
        return all(rng.matches(parse_rfc3339(_instant(item, name))) for name, rng in q.ranges.items())

    def _attribute(self, records: list[dict[str, Any]]) -> list[ListedEvent]:
        """Each record with the customer its subject resolves to when the page is read."""
        subjects = {r["subject"] for r in records}
        customers = self.attribution.resolve_subjects(subjects) if subjects else {}
        out = []
        for rec in records:
            customer = customers.get(rec["subject"])
            out.append(ListedEvent(rec, customer.id if customer is not None else None))
        return out


def _instant(item: dict[str, Any], name: str) -> str:
    value = str(item.get(name) or "")
    if not value and name == "ingested_at":
        return str(item["stored_at"])
    return value


def _count(entry: dict[str, Any]) -> int:
    return int(entry.get("n", {"N": "1"})["N"])


class _Reversed:
    """A string that sorts backwards (heapq is a min-heap; descending walks need the largest)."""

    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _Reversed) -> bool:
        return self.s > other.s


def _hour_floor(key: str) -> str:
    return key[:13] + ":00:00.000000Z"


def _hour_ceiling(key: str) -> str:
    """The start of the hour after the instant `key` begins with (a block ends before it)."""
    return sortable(datetime.fromisoformat(key[:13] + ":00:00+00:00").astimezone(UTC) + BLOCK_SPAN)
