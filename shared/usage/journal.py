"""The shard journal: usage is written behind, a flush at a time, not a batch at a time.

Why: a counter write costs a write unit however little it adds. With Lambda's ~1 s batching
window a batch holds ~100 events spread over many subjects, so applying every batch moved ~2.5
counter items per event. The journal keeps each batch's contributions in one item, and a flush
applies everything journaled since the last flush at once, through the same exact counter
machinery (counters.py): a counter is written once per flush, not once per batch.

Items (usage table; journal items expire, everything else in the table is kept):
  tail item   pk = "J#<shard>"   sk = "<last position>#<first position>" of the batch's records
              `parts` = zlib(JSON) of the batch's (position, contribution) pairs, `n`, `at` (when
              journaled, epoch ms: the idle sweep's clock), `since` (the batch's earliest ingestion
              time, epoch ms: a tail is due when it spans `flush_seconds` of traffic, which a
              replay or a bench decides alike), `expires_at` (7 days: Kinesis's own retention)
  shard state pk = "JSTATE"      sk = <shard>
              `flushed` = the highest position a flush applied. One partition: the idle-shard
              sweep reads every shard in one Query.

Exactly once, case by case:
- An item is named by the exact range of records it holds, so it is never replaced by different
  content: a retried batch (Lambda retry, crash) writes the same item again; a bisected half, a
  redelivered tail or a whole batch after its halves write items of their own, overlapping. A
  record adds at most one contribution per meter, so a flush takes each (position, meter) once,
  whichever item holds it, and overlaps count once.
- The tail is the items whose last record is after `flushed` (`sk > flushed`): an item at or
  below it holds only records a flush covered. Within the tail, records at or below `flushed`
  are skipped.
- A flush applies the tail's contributions with counters.py's conditional writes, which are exact
  by each counter's own per-shard position: a flush that crashed and runs again, or two flushers
  racing (the shard's processor and the idle sweep), add each record once.
- `flushed` only moves forward (conditional write), so a slow flusher can't move it back.
- A processor's in-memory tail is checked before use: any tail item after the newest it knows
  (written by another instance of the function) makes it reload from the table, and a flush
  reloads when another flusher moved `flushed` past what it knows.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from botocore.exceptions import ClientError

from shared.aws.dynamo import query_all
from shared.meters.models import Aggregation
from shared.usage.counters import member_key
from shared.usage.extract import Contribution

TAIL_TTL_SECONDS = 7 * 24 * 3600
# Compressed contributions per item: well under DynamoDB's 400 KB item limit. A batch beyond it
# (a thousand records on an event type with many meters) is journaled as several items, each
# named by the sub-range of records it holds.
MAX_PARTS_BYTES = 300_000
STATE_PK = "JSTATE"
FLOOR = "!"  # below every encoded position (they start with digits): "nothing flushed yet"
Parts = list[tuple[str, Contribution]]


# Bumped by every journal write of this process: a reader of the tail (tail.py) that reuses what it
# read a moment ago reads again when this process has journaled since (the aggregate function's
# access refresh must see the batch it just journaled).
journaled_here = 0


def tail_pk(shard: str) -> str:
    return f"J#{shard}"


def encode_parts(parts: Parts) -> bytes:
    rows = [
        [
            pos,
            c.meter_id,
            c.aggregation.value,
            c.subject,
            int(c.minute.timestamp()) // 60,
            [list(d) for d in c.dims],
            str(c.value),
            c.order_key,
            None if c.unique is None else member_key(c.unique),  # as stored: long values hashed
        ]
        for pos, c in parts
    ]
    return zlib.compress(orjson.dumps(rows), 6)


def decode_parts(blob: bytes) -> Parts:
    out: Parts = []
    rows = orjson.loads(zlib.decompress(blob))
    for pos, meter_id, agg, subject, minute, dims, value, order_key, unique in rows:
        out.append(
            (
                pos,
                Contribution(
                    meter_id,
                    Aggregation(agg),
                    subject,
                    datetime.fromtimestamp(minute * 60, UTC),
                    tuple((k, v) for k, v in dims),
                    Decimal(value),
                    order_key,
                    unique,
                ),
            )
        )
    return out


@dataclass
class TailItem:
    key: str
    at_ms: int
    since_ms: int
    parts: Parts


@dataclass
class Tail:
    """One shard's journaled batches not yet flushed, as this instance knows them."""

    shard: str
    flushed: str = FLOOR
    items: list[TailItem] = field(default_factory=list)

    def newest_key(self) -> str:
        return max([self.flushed, *(i.key for i in self.items)])

    def last_position(self) -> str:
        return max([self.flushed, *(i.key.split("#", 1)[0] for i in self.items)])

    def oldest_ms(self) -> int | None:
        return min((i.at_ms for i in self.items), default=None)

    def since_ms(self) -> int | None:
        return min((i.since_ms for i in self.items), default=None)

    def records(self) -> int:
        return sum(len(i.parts) for i in self.items)

    def put(self, item: TailItem) -> None:
        self.items = [i for i in self.items if i.key != item.key] + [item]

    def pending(self) -> Parts:
        """Every journaled contribution after `flushed`, in stream order, each once: a record adds
        at most one contribution per meter, so (position, meter) names it, and items of
        overlapping cuts hold the same ones."""
        found: dict[tuple[str, str], Contribution] = {}
        for item in self.items:
            for pos, c in item.parts:
                if pos > self.flushed:
                    found.setdefault((pos, c.meter_id), c)
        return [(pos, found[(pos, m)]) for pos, m in sorted(found)]


class Journal:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def load(self, shard: str) -> Tail:
        tail = Tail(shard, self.flushed(shard))
        tail.items = [self._item(raw) for raw in self._after(shard, tail.flushed)]
        return tail

    def flushed(self, shard: str) -> str:
        state = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": STATE_PK}, "sk": {"S": shard}},
            ConsistentRead=True,
            ProjectionExpression="flushed",
        ).get("Item", {})
        flushed: str = state.get("flushed", {}).get("S", FLOOR)
        return flushed

    def current(self, tail: Tail) -> bool:
        """True when no tail item exists after the newest this instance knows."""
        page = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :p AND sk > :k",
            ExpressionAttributeValues={":p": {"S": tail_pk(tail.shard)}, ":k": {"S": tail.newest_key()}},
            ConsistentRead=True,
            Limit=1,
            ProjectionExpression="sk",
        )
        return not page.get("Items")

    def append(
        self, shard: str, first: str, last: str, parts: Parts, now: datetime, since: datetime
    ) -> list[TailItem]:
        """Journal a batch's contributions (records `first`..`last`): one item, or several named by
        their sub-ranges when the compressed contributions pass `MAX_PARTS_BYTES`. The split is
        deterministic, so a retry writes the same items."""
        written = []
        for lo, hi, chunk, blob in _chunks(first, last, parts):
            item = TailItem(f"{hi}#{lo}", int(now.timestamp() * 1000), int(since.timestamp() * 1000), chunk)
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": tail_pk(shard)},
                    "sk": {"S": item.key},
                    "parts": {"B": blob},
                    "n": {"N": str(len(chunk))},
                    "at": {"N": str(item.at_ms)},
                    "since": {"N": str(item.since_ms)},
                    "expires_at": {"N": str(int(now.timestamp()) + TAIL_TTL_SECONDS)},
                },
            )
            written.append(item)
        global journaled_here
        journaled_here += 1
        return written

    def mark_flushed(self, shard: str, flushed: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": STATE_PK}, "sk": {"S": shard}},
                UpdateExpression="SET flushed = :p",
                ConditionExpression="attribute_not_exists(flushed) OR flushed < :p",
                ExpressionAttributeValues={":p": {"S": flushed}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # Another flusher got further: its state stands.

    def shards(self) -> list[str]:
        """Every shard that ever flushed, or journaled (see `register`)."""
        return [
            i["sk"]["S"]
            for i in query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": STATE_PK}},
                ConsistentRead=True,
                ProjectionExpression="sk",
            )
        ]

    def register(self, shard: str) -> None:
        """A shard's state item exists from its first journaled batch, so the idle sweep finds it."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"pk": {"S": STATE_PK}, "sk": {"S": shard}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def _after(self, shard: str, key: str) -> list[dict[str, Any]]:
        return list(
            query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :p AND sk > :k",
                ExpressionAttributeValues={":p": {"S": tail_pk(shard)}, ":k": {"S": key}},
                ConsistentRead=True,
            )
        )

    @staticmethod
    def _item(raw: dict[str, Any]) -> TailItem:
        return TailItem(
            raw["sk"]["S"],
            int(raw["at"]["N"]),
            int(raw["since"]["N"]),
            decode_parts(bytes(raw["parts"]["B"])),
        )


def _chunks(first: str, last: str, parts: Parts) -> list[tuple[str, str, Parts, bytes]]:
    """(first, last, contributions, compressed) covering `parts`, halved by record until each fits;
    the outer bounds stay the batch's own. A single record too large alone is split by contribution
    into items named `<pos>#<n>#<pos>` (flushes take each (position, meter) once, wherever it is)."""
    blob = encode_parts(parts)
    if len(blob) <= MAX_PARTS_BYTES:
        return [(first, last, parts, blob)]
    positions = sorted({pos for pos, _ in parts})
    if len(positions) < 2:
        return _split_record(positions[0], parts)
    middle = positions[len(positions) // 2]  # the second half starts at this record
    below = [p for p in parts if p[0] < middle]
    above = [p for p in parts if p[0] >= middle]
    return _chunks(first, max(p for p, _ in below), below) + _chunks(middle, last, above)


def _split_record(pos: str, parts: Parts) -> list[tuple[str, str, Parts, bytes]]:
    out: list[tuple[str, str, Parts, bytes]] = []
    chunk: Parts = []
    for part in parts:
        if chunk and len(encode_parts([*chunk, part])) > MAX_PARTS_BYTES:
            out.append((pos, f"{pos}#{len(out)}", chunk, encode_parts(chunk)))
            chunk = []
        chunk.append(part)
    blob = encode_parts(chunk)
    if len(blob) > MAX_PARTS_BYTES:  # one contribution: bounded by the dimension limit, can't happen
        raise ValueError(f"a usage contribution of {len(blob)} bytes can't be journaled")
    out.append((pos, f"{pos}#{len(out)}", chunk, blob))
    return out
