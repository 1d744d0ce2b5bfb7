"""Usage journaled but not flushed yet, for readers: meter queries and access states count it.

Why: a busy shard writes usage behind (journal.py), so its counters trail ingestion by up to
`USAGE_FLUSH_SECONDS`. A reader that added only counters would see usage that late; quotas must
see it within seconds. So a query reads every shard's unflushed tail first, then the counters,
and adds each tail contribution the counter item it lands in doesn't hold yet.

Exact, case by case:
- The tail is read *before* the counters. A contribution in it is either in the counter item
  the query then reads (a flush applied it: the item's `ap#<shard>` is at or after its position),
  and skipped; or not, and added. An item's counts and positions move in one write, so even an
  eventually consistent read of it is self-consistent.
- Contributions at or below a shard's `flushed` were in the counters before `flushed` moved (a
  flush writes counters first), so only the records after it are taken; overlapping items (retries,
  bisected halves) hold the same (position, meter) contributions, taken once.
- unique_count values are unions and min/max/latest idempotent: their tail values fold in as they
  are, whether a flush applied them or not.
- What is journaled after the tail was read isn't seen: the answer is as of the read, never double.

Cost: a tail item holds the exact records it is named by, so a reader keeps the items it decoded
and asks each shard only for items after the newest it knows (one Query per shard, plus one for
the shards' states): a warm reader reads each journal item once. A read is reused for `max_age`
seconds (an invoice run's or a refresh's many queries read the tail once), unless this process
journaled since: reusing an earlier read is as exact (the tail is still read before the counters),
only older. An item written later under a
lower name (a bisected retry of records already journaled) only holds contributions already known,
unless a meter was created between the attempts; those wait for the flush (fresher, never wrong).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from shared.aws.dynamo import query_all
from shared.usage import journal
from shared.usage.extract import Contribution
from shared.usage.journal import FLOOR, STATE_PK, Parts, decode_parts, tail_pk


@dataclass(frozen=True)
class Unflushed:
    """One journaled contribution no flush has covered: (shard, position) says which counters
    hold it already (their `ap#<shard>` at or after `pos`)."""

    shard: str
    pos: str
    contribution: Contribution


class TailReader:
    """Reads every shard's unflushed usage, keeping decoded journal items between reads."""

    def __init__(self, client: Any, table: str, max_age: float = 1.0) -> None:
        self.client = client
        self.table = table
        self.max_age = max_age
        self._items: dict[str, dict[str, Parts]] = {}  # shard -> journal item key -> contributions
        # The last read: (monotonic time, journal.journaled_here, consistent, what it found).
        self._last: tuple[float, int, bool, list[Unflushed]] | None = None
        self._lock = threading.Lock()  # the local HTTP front serves requests on threads

    def read(self, consistent: bool, meter_ids: set[str] | None = None) -> list[Unflushed]:
        """Unflushed contributions (of `meter_ids`, or all), each (shard, position, meter) once."""
        last = self._last
        if (
            last is not None
            and time.monotonic() - last[0] < self.max_age
            and last[1] == journal.journaled_here
            and (last[2] or not consistent)
        ):
            found = last[3]
        else:
            stamp = (time.monotonic(), journal.journaled_here)
            found = self._read(consistent)
            self._last = (*stamp, consistent, found)
        return [u for u in found if meter_ids is None or u.contribution.meter_id in meter_ids]

    def _read(self, consistent: bool) -> list[Unflushed]:
        out: list[Unflushed] = []
        for shard, flushed in self._flushed(consistent).items():
            with self._lock:
                known = self._items.setdefault(shard, {})
                for key in [k for k in known if k.split("#", 1)[0] <= flushed]:
                    del known[key]  # every record it holds is flushed
                # "$" sorts after "#": an item named "<flushed>#<first>" holds nothing after it.
                after = max([flushed + "$", *known])
            fresh = {
                raw["sk"]["S"]: decode_parts(bytes(raw["parts"]["B"]))
                for raw in query_all(
                    self.client,
                    TableName=self.table,
                    KeyConditionExpression="pk = :p AND sk > :k",
                    ExpressionAttributeValues={":p": {"S": tail_pk(shard)}, ":k": {"S": after}},
                    ConsistentRead=consistent,
                )
            }
            with self._lock:
                known.update(fresh)
                items = list(known.values())
            seen: set[tuple[str, str]] = set()
            for parts in items:
                for pos, c in parts:
                    if pos <= flushed:
                        continue
                    if (pos, c.meter_id) not in seen:
                        seen.add((pos, c.meter_id))
                        out.append(Unflushed(shard, pos, c))
        return out

    def _flushed(self, consistent: bool) -> dict[str, str]:
        """Every shard that journaled, with the highest position a flush applied on it."""
        return {
            i["sk"]["S"]: i.get("flushed", {}).get("S", FLOOR)
            for i in query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": STATE_PK}},
                ConsistentRead=consistent,
            )
        }
