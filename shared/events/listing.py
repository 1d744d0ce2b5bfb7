"""`GET /events`: list stored events in one of three orders with opaque cursors.

The walk. Each order (`time`, `ingested_at`, `stored_at`) has a GSI whose partitions are one UTC
day split into `LIST_SHARDS` shards (see keys.py). A listing walks the days of its window in the
requested direction; for each day it queries the shard partitions in parallel (with up to
`MAX_PREFETCH_DAYS` following days prefetched once days turn out sparse) and merges them by sort
key (`heapq.merge`), so events come out in exact order with the event key as tie-breaker. Filters
the index can't express (id, source, subject, type, customer, the other two instants, TTL-expired
items) are applied to each item as it is read. The walk stops as soon as it has `size + 1`
matches (the extra one only says there is a next page).

The window. A range filter on the field being sorted by bounds the days walked. A missing lower
bound defaults to `DEFAULT_WINDOW` (32 days) before the upper bound or now; a missing upper bound
is now (plus one day for `time`, whose events may be stamped slightly in the future, and a few
minutes of clock skew for the other two). `time` never goes back further than the retention. To
list older events, pass a lower bound, e.g. `filter[time][gte]=...`.

Budgets. One request reads at most `max_scanned` index items and spends at most `max_seconds`
walking. When a budget runs out before the page is full, the (possibly short or empty) page has a
`next` link that resumes exactly where the walk stopped, so sparse filters over long windows page
through instead of timing out.

Cursors are positions (a sort key, or a day boundary after an exhausted budget), not offsets, so
new events never shift pages. Customers are attributed when the page is read, not when stored.
"""

from __future__ import annotations

import heapq
import time as monotime
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from shared.core.timeutil import Clock, parse_rfc3339
from shared.events.keys import INDEX_NAMES, LIST_SHARDS, ORDERS, sortable
from shared.events.models import Cursor, EventPage, ListedEvent, ListQuery
from shared.events.stored import stored_event_from_item

DEFAULT_WINDOW = timedelta(days=32)
TIME_FUTURE_ALLOWANCE = timedelta(days=1)
CLOCK_SKEW = timedelta(minutes=5)
MAX_PREFETCH_DAYS = 4
MAX_SCANNED = 5000
MAX_SECONDS = 3.0

_POOL = ThreadPoolExecutor(max_workers=LIST_SHARDS * MAX_PREFETCH_DAYS, thread_name_prefix="events-list")


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
            items = self._walk(q.order, ascending, *bounds, need, filtering, walk)
            for sk, item in items:
                if self._accepts(item, q, epoch, subjects_in, subjects_out):
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
        events = self._attribute([stored_event_from_item(item) for _, item in page])
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
        filtering: bool,
        walk: _Walk,
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        index = INDEX_NAMES[order]
        pk_attr, sk_attr, prefix, _field = ORDERS[order]
        start, end = (lower, upper) if ascending else (upper, lower)
        first_day, last_day = date.fromisoformat(start.key[:10]), date.fromisoformat(end.key[:10])
        step = timedelta(days=1 if ascending else -1)
        total_days = abs((last_day - first_day).days) + 1
        first_limit = max(8, -(-2 * need // LIST_SHARDS))
        next_limit = min(1000, max(need, 100) if filtering else need)
        deadline = monotime.monotonic() + self.max_seconds

        def condition(day: date) -> tuple[str, dict[str, Any]]:
            """The key condition for one day: the start bound on the first day, else the end bound."""
            bound = start if day == first_day else end if day == last_day else None
            if bound is None:
                return "#pk = :pk", {}
            forward = (bound is start) == ascending  # a lower bound
            op = (">" if forward else "<") + ("=" if bound.inclusive else "")
            return f"#pk = :pk AND #sk {op} :sk", {":sk": {"S": bound.key}}

        def submit(day: date) -> list[tuple[dict[str, Any], Future[dict[str, Any]]]]:
            expression, values = condition(day)
            out = []
            for shard in range(LIST_SHARDS):
                kwargs: dict[str, Any] = {
                    "TableName": self.table,
                    "IndexName": index,
                    "KeyConditionExpression": expression,
                    "ExpressionAttributeNames": {"#pk": pk_attr, **({"#sk": sk_attr} if values else {})},
                    "ExpressionAttributeValues": {
                        ":pk": {"S": f"{prefix}#{day.isoformat()}#{shard}"},
                        **values,
                    },
                    "ScanIndexForward": ascending,
                }
                out.append((kwargs, _POOL.submit(self.client.query, Limit=first_limit, **kwargs)))
            return out

        def shard_stream(
            kwargs: dict[str, Any], first: Future[dict[str, Any]]
        ) -> Iterator[tuple[str, dict[str, Any]]]:
            page = first.result()
            while True:
                for item in page.get("Items", []):
                    yield item[sk_attr]["S"], item
                last = page.get("LastEvaluatedKey")
                if not last:
                    return
                page = self.client.query(Limit=next_limit, ExclusiveStartKey=last, **kwargs)

        def past_end(sk: str) -> bool:
            if ascending:
                return sk > end.key or (sk == end.key and not end.inclusive)
            return sk < end.key or (sk == end.key and not end.inclusive)

        pending: dict[int, list[tuple[dict[str, Any], Future[dict[str, Any]]]]] = {}
        ahead = 2
        for n in range(total_days):
            day = first_day + step * n
            if n and (monotime.monotonic() >= deadline or (self.max_days is not None and n >= self.max_days)):
                # Resume at the start of this day: ascending, everything after the previous day;
                # descending, everything before the day just finished.
                walk.resume = _day_start(day if ascending else day - step)
                return
            for m in range(n, min(n + ahead, total_days)):
                if m not in pending:
                    pending[m] = submit(first_day + step * m)
            streams = [shard_stream(kwargs, future) for kwargs, future in pending.pop(n)]
            for sk, item in heapq.merge(*streams, key=lambda pair: pair[0], reverse=not ascending):
                if past_end(sk):
                    return
                walk.scanned += 1
                yield sk, item
                if walk.scanned >= self.max_scanned or (
                    walk.scanned % 256 == 0 and monotime.monotonic() >= deadline
                ):
                    walk.resume = sk
                    return
            if n:  # (the first day is often, for `time` always, tomorrow's: no sign of sparseness)
                ahead = min(ahead * 2, MAX_PREFETCH_DAYS)

    # -- per item ------------------------------------------------------------------------------------
    @staticmethod
    def _accepts(
        item: dict[str, Any],
        q: ListQuery,
        epoch: int,
        subjects_in: set[str] | None,
        subjects_out: set[str] | None,
    ) -> bool:
        expires = item.get("expires_at")
        if expires is not None and int(expires["N"]) <= epoch:
            return False  # expired; DynamoDB deletes TTL items lazily
        subject = item["subject"]["S"]
        if subjects_in is not None and subject not in subjects_in:
            return False
        if subjects_out is not None and subject in subjects_out:
            return False
        if q.strings:
            source, _, event_id = item["pk"]["S"].partition("\x1f")
            values = {"id": event_id, "source": source, "subject": subject, "type": item["type"]["S"]}
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
    value = item.get(name, {}).get("S") or ""
    if not value and name == "ingested_at":
        return str(item["stored_at"]["S"])
    return value
