"""Usage counter items and their idempotent, pre-aggregated updates.

Key design (usage table):
  counter  pk = "<meter_id>#<subject>#<level><period>"   sk = "<level>#<YYYYMMDDHHMM>#<dims hash>"
           period: the bucket's day (M), year (H), nothing (D)
           c (events), s (sum of values; not kept for count meters), d (dimension values), sub (subject),
           "ap#<shard>"  position of the last stream record from that shard applied here,
  additive (count, sum, avg): two slotted items per counter, day (D) and hour (H); beside the totals
           they hold "c<NN>" (count, avg) / "s<NN>" (sum, avg) per slot: the day item's hours, the
           hour item's minutes. So an
           event costs two counter items, not one per level, and any window reads whole items or
           slot ranges (buckets.slot_pieces): a minute is a slot of an hour item, an hour a slot of a
           day item.
  extremes (min, max, latest): one item per D, H and M bucket with per-shard attributes
           "mn#<shard>" / "mx#<shard>"  min / max of that shard's values,
           "lt#<shard>" / "lv#<shard>"  order key and value of that shard's latest event
  member   pk = "U#<counter pk>"           sk = "D#<YYYYMMDDHHMM>#<dims hash>#<value>"
           unique_count, day: one item per distinct value, so exact and combinable across
           buckets; re-putting a member is a no-op, hence idempotent. No hour level: an hour is
           the union of its minutes' sets (buckets.MEMBER_LEVELS). Tables written before issue 12
           still hold hour members ("H#..."); nothing reads them.
  member set  pk = "U#<counter pk>"        sk = "M#<YYYYMMDDHHMM>#<dims hash>",  u = string set
           unique_count, minute: the minute's values in one set, written with ADD (a union: replaying
           it is a no-op). A set that would pass DynamoDB's 400 KB item limit spills its new values
           into member items of the same minute (`spill`); queries read both forms.
  subjects pk = "S#T#<event_type>"         sk = <subject>
           one item per (event type, subject), shared by the type's meters; readers also take the
           previous release's "S#<meter_id>" items (subjects.py)

Exactly once without transactions: each shard has one in-order processor (parallelization 1)
and is the only writer of its own "ap#<shard>" (and "mn/mx/lt/lv#<shard>") attributes. An update
adds only contributions from records after that position and moves it forward in the same
conditional write, so replaying a record (Lambda retry, bisected batch, crash between writes) can
never add it twice; ADD keeps concurrent updates from other shards commutative. Slots move in the
same write as the totals and the position, so they can't drift from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.dynamo import batch_get, batch_put, to_item, to_value
from shared.meters.models import Aggregation
from shared.usage.buckets import LEVELS, MEMBER_LEVELS, SLOTS, bucket_code, bucket_start, slot_of
from shared.usage.extract import MAX_INLINE_UNIQUE, Contribution

ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT, Aggregation.AVG})
EXTREMES = frozenset({Aggregation.MIN, Aggregation.MAX, Aggregation.LATEST})


def encode_position(sequence_number: str) -> str:
    """Kinesis sequence numbers are decimal strings of varying length; length-prefixing makes
    DynamoDB's string comparison agree with numeric order."""
    return f"{len(sequence_number):03d}{sequence_number}"


@lru_cache(maxsize=8192)
def level_codes(minute: datetime) -> tuple[tuple[str, str], ...]:
    """(level, bucket code) of every level for one minute; cached: a batch spans few minutes."""
    return tuple((level, bucket_code(bucket_start(level, minute))) for level, _ in LEVELS)


@lru_cache(maxsize=8192)
def member_codes(minute: datetime) -> tuple[tuple[str, str], ...]:
    """(level, bucket code) of the unique_count levels for one minute: day and minute."""
    return tuple((level, bucket_code(bucket_start(level, minute))) for level, _ in MEMBER_LEVELS)


@lru_cache(maxsize=8192)
def slot_codes(minute: datetime) -> tuple[tuple[str, str], ...]:
    """(level, bucket code) of the slotted items (day, hour) a minute is counted in."""
    return tuple((level, bucket_code(bucket_start(level, minute))) for level in SLOTS)


@lru_cache(maxsize=8192)
def dims_hash(dims: tuple[tuple[str, str], ...]) -> str:
    if not dims:
        return "-"
    raw = "\x1f".join(f"{k}\x1e{v}" for k, v in dims)
    return hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


# Partitions are bounded in time so that no item collection grows without end: minutes per day,
# hours per year, days per meter and subject.
_PERIOD_CHARS = {"M": 8, "H": 4, "D": 0}


def partition(meter_id: str, subject: str, level: str, code: str) -> str:
    return f"{meter_id}#{subject}#{level}{code[: _PERIOD_CHARS[level]]}"


def member_partition(meter_id: str, subject: str, level: str, code: str) -> str:
    return "U#" + partition(meter_id, subject, level, code)


def member_key(value: str) -> str:
    if len(value.encode()) <= MAX_INLINE_UNIQUE:
        return value
    return "h:" + hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


@dataclass
class Part:
    """What the records at one stream position add to one counter."""

    pos: str
    count: int = 0
    total: Decimal = field(default_factory=Decimal)
    low: Decimal | None = None
    high: Decimal | None = None
    latest_key: str = ""
    latest_value: Decimal | None = None
    slots: dict[int, list[Any]] = field(default_factory=dict)  # slotted items: slot -> [count, total]

    def add(self, c: Contribution, slot: int | None = None) -> None:
        self.count += 1
        self.total += c.value
        self.low = c.value if self.low is None else min(self.low, c.value)
        self.high = c.value if self.high is None else max(self.high, c.value)
        if c.order_key > self.latest_key:
            self.latest_key, self.latest_value = c.order_key, c.value
        if slot is not None:
            acc = self.slots.setdefault(slot, [0, Decimal(0)])
            acc[0] += 1
            acc[1] += c.value

    def merge(self, other: Part) -> None:
        self.count += other.count
        self.total += other.total
        for attr, pick in (("low", min), ("high", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        if other.latest_key > self.latest_key:
            self.latest_key, self.latest_value = other.latest_key, other.latest_value
        for slot, (count, total) in other.slots.items():
            acc = self.slots.setdefault(slot, [0, Decimal(0)])
            acc[0] += count
            acc[1] += total


@dataclass
class PendingCounter:
    pk: str
    sk: str
    subject: str
    dims: tuple[tuple[str, str], ...]
    aggregation: Aggregation
    parts: list[Part] = field(default_factory=list)  # in stream order

    def fold(self, after: str | None = None) -> Part | None:
        """Everything from records after `after` (None: all), as one Part at the last position."""
        folded: Part | None = None
        for part in self.parts:
            if after is not None and part.pos <= after:
                continue
            if folded is None:
                folded = Part(part.pos)
            folded.merge(part)
            folded.pos = part.pos
        return folded

    def first_pos(self) -> str:
        return self.parts[0].pos


@dataclass
class PendingWork:
    counters: dict[tuple[str, str], PendingCounter] = field(default_factory=dict)
    members: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # hour and day members
    member_sets: dict[tuple[str, str], MemberSet] = field(default_factory=dict)  # minute member sets


@dataclass
class MemberSet:
    """The unique_count values one batch adds to one minute (pk, sk = the minute's member set)."""

    pk: str
    sk: str
    subject: str
    dims: tuple[tuple[str, str], ...]
    values: set[str] = field(default_factory=set)


def pre_aggregate(items: Iterable[tuple[str, Contribution]]) -> PendingWork:
    """Fold (position, contribution) pairs into one pending write per counter or member item."""
    work = PendingWork()
    for pos, c in items:
        dh = dims_hash(c.dims)
        if c.aggregation == Aggregation.UNIQUE_COUNT:
            for level, code in member_codes(c.minute):
                pk = member_partition(c.meter_id, c.subject, level, code)
                prefix = f"{level}#{code}#{dh}"
                if level == "M":
                    member_set = work.member_sets.get((pk, prefix))
                    if member_set is None:
                        member_set = work.member_sets[(pk, prefix)] = MemberSet(pk, prefix, c.subject, c.dims)
                    member_set.values.add(member_key(c.unique or ""))
                    continue
                sk = f"{prefix}#{member_key(c.unique or '')}"
                work.members.setdefault((pk, sk), {"pk": pk, "sk": sk, "sub": c.subject, "d": dict(c.dims)})
            continue
        slotted = c.aggregation in ADDITIVE
        for level, code in slot_codes(c.minute) if slotted else level_codes(c.minute):
            pk = partition(c.meter_id, c.subject, level, code)
            prefix = f"{level}#{code}#{dh}"
            counter = work.counters.get((pk, prefix))
            if counter is None:
                counter = work.counters[(pk, prefix)] = PendingCounter(
                    pk, prefix, c.subject, c.dims, c.aggregation
                )
            if not counter.parts or counter.parts[-1].pos != pos:
                counter.parts.append(Part(pos))
            counter.parts[-1].add(c, slot_of(level, c.minute) if slotted else None)
    return work


def _cond_failed(exc: ClientError) -> bool:
    code: str = exc.response["Error"]["Code"]
    return code == "ConditionalCheckFailedException"


def _too_large(exc: ClientError) -> bool:
    code: str = exc.response["Error"]["Code"]
    message = str(exc.response["Error"].get("Message", ""))
    return code == "ValidationException" and "size" in message.lower()


class CounterWriter:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def prefetch(self, counters: Iterable[PendingCounter]) -> dict[tuple[str, str], dict[str, Any]]:
        """Current items of the counters that need a read (min, max, latest), 100 per call."""
        keys = [{"pk": {"S": c.pk}, "sk": {"S": c.sk}} for c in counters if c.aggregation in EXTREMES]
        return {(i["pk"]["S"], i["sk"]["S"]): i for i in batch_get(self.client, self.table, keys)}

    def apply(self, counter: PendingCounter, shard: str, current: dict[str, Any] | None = None) -> bool:
        """Apply a pending counter once. Returns False when the stream had already applied it."""
        if counter.aggregation in EXTREMES:
            return self._apply_extremes(counter, shard, current)
        folded = counter.fold()
        if folded is None:
            return False
        try:
            self._add(
                counter,
                shard,
                folded,
                "attribute_not_exists(#ap) OR #ap < :first",
                {":first": to_value(counter.first_pos())},
            )
            return True
        except ClientError as exc:
            if not _cond_failed(exc):
                raise
        # A replay: part of this batch was applied before. Add only what came after that point.
        for _ in range(5):
            applied = self._applied(self._get(counter), shard)
            folded = counter.fold(after=applied)
            if folded is None:
                return False
            try:
                self._add(counter, shard, folded, "#ap = :applied", {":applied": to_value(applied)})
                return True
            except ClientError as exc:
                if not _cond_failed(exc):
                    raise
        raise RuntimeError(f"counter {counter.pk}/{counter.sk} kept changing under shard {shard}")

    def add_members(self, member_set: MemberSet) -> None:
        """Union a batch's values into its minute's member set. ADD of a set is idempotent, so a
        replay needs no position check. Past the item size limit, the values go into member items
        of the same minute instead (puts: idempotent too); queries union both."""
        key = {"pk": {"S": member_set.pk}, "sk": {"S": member_set.sk}}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="ADD u :u SET #sub = :sub, d = :d",
                ExpressionAttributeNames={"#sub": "sub"},
                ExpressionAttributeValues={
                    ":u": {"SS": sorted(member_set.values)},
                    ":sub": to_value(member_set.subject),
                    ":d": to_value(dict(member_set.dims)),
                },
            )
        except ClientError as exc:
            if not _too_large(exc):
                raise
            self.spill(member_set)

    def spill(self, member_set: MemberSet) -> None:
        items = [
            to_item({"pk": member_set.pk, "sk": f"{member_set.sk}#{value}", "sub": member_set.subject})
            | {"d": to_value(dict(member_set.dims))}
            for value in sorted(member_set.values)
        ]
        batch_put(self.client, self.table, items)

    def _get(self, counter: PendingCounter) -> dict[str, Any]:
        key = {"pk": {"S": counter.pk}, "sk": {"S": counter.sk}}
        item: dict[str, Any] = self.client.get_item(TableName=self.table, ConsistentRead=True, Key=key).get(
            "Item", {}
        )
        return item

    @staticmethod
    def _applied(item: dict[str, Any], shard: str) -> str | None:
        value = item.get(f"ap#{shard}", {}).get("S")
        return str(value) if value is not None else None

    def _add(
        self, counter: PendingCounter, shard: str, folded: Part, condition: str, values: dict[str, Any]
    ) -> None:
        # Slots keep only what the meter's value needs, so an hour item with every minute used
        # stays within one write unit: count meters add no values (every value is 0), sum meters
        # need no slot counts (a slot's presence says it has events); avg needs both.
        with_sums = counter.aggregation != Aggregation.COUNT
        slot_counts = counter.aggregation != Aggregation.SUM
        adds = ["c :c"] + (["s :s"] if with_sums else [])
        extra: dict[str, Any] = {":c": to_value(folded.count)}
        if with_sums:
            extra[":s"] = to_value(folded.total)
        for slot, (count, total) in sorted(folded.slots.items()):
            if slot_counts:
                adds.append(f"c{slot:02d} :c{slot:02d}")
                extra[f":c{slot:02d}"] = to_value(count)
            if with_sums:
                adds.append(f"s{slot:02d} :s{slot:02d}")
                extra[f":s{slot:02d}"] = to_value(total)
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": counter.pk}, "sk": {"S": counter.sk}},
            UpdateExpression=f"ADD {', '.join(adds)} SET #ap = :last, #sub = :sub, d = :d",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#ap": f"ap#{shard}", "#sub": "sub"},
            ExpressionAttributeValues={
                **extra,
                ":last": to_value(folded.pos),
                ":sub": to_value(counter.subject),
                ":d": to_value(dict(counter.dims)),
                **values,
            },
        )

    def _apply_extremes(self, counter: PendingCounter, shard: str, current: dict[str, Any] | None) -> bool:
        """min/max/latest: this shard's own attributes, read-modify-written under its position."""
        item = current if current is not None else self._get(counter)
        for _ in range(5):
            applied = self._applied(item, shard)
            folded = counter.fold(after=applied)
            if folded is None:
                return False
            names = {
                "#ap": f"ap#{shard}",
                "#sub": "sub",
                "#mn": f"mn#{shard}",
                "#mx": f"mx#{shard}",
                "#lt": f"lt#{shard}",
                "#lv": f"lv#{shard}",
            }
            low, high = folded.low, folded.high
            if f"mn#{shard}" in item:
                low = min(Decimal(item[f"mn#{shard}"]["N"]), low)  # type: ignore[type-var]
                high = max(Decimal(item[f"mx#{shard}"]["N"]), high)  # type: ignore[type-var]
            latest_key, latest_value = folded.latest_key, folded.latest_value
            if item.get(f"lt#{shard}", {}).get("S", "") > latest_key:
                latest_key, latest_value = item[f"lt#{shard}"]["S"], Decimal(item[f"lv#{shard}"]["N"])
            values = {
                ":c": to_value(folded.count),
                ":last": to_value(folded.pos),
                ":sub": to_value(counter.subject),
                ":d": to_value(dict(counter.dims)),
                ":mn": to_value(low),
                ":mx": to_value(high),
                ":lt": to_value(latest_key),
                ":lv": to_value(latest_value),
            }
            if applied is None:
                condition = "attribute_not_exists(#ap)"
            else:
                condition = "#ap = :applied"
                values[":applied"] = to_value(applied)
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": counter.pk}, "sk": {"S": counter.sk}},
                    UpdateExpression="ADD c :c SET #ap = :last, #sub = :sub, d = :d, #mn = :mn, #mx = :mx, "
                    "#lt = :lt, #lv = :lv",
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
                return True
            except ClientError as exc:
                if not _cond_failed(exc):
                    raise
            item = self._get(counter)
        raise RuntimeError(f"counter {counter.pk}/{counter.sk} kept changing under shard {shard}")
