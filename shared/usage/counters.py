"""Usage counter items and their idempotent, pre-aggregated updates.

Key design (usage table):
  pk = "<meter_id>#<subject>"                          one partition per meter and subject
  sk = "<level>#<YYYYMMDDHHMM>#<dims hash>"            level M/Q/H/D, UTC bucket start
  attributes: c (event count), s (sum of values), d (dimension values), sub (subject),
              "ap#<shard id>" = position of the last stream record from that shard applied here
Subject index: pk = "S#<meter_id>", sk = <subject>.

Exactly once without transactions: each shard has one in-order processor (parallelization 1)
and is the only writer of its own "ap#<shard>" attribute. An update adds only contributions from
records after that position and moves it forward in the same conditional write, so replaying a
record (Lambda retry, bisected batch, crash between writes) can never add it twice, and ADD
keeps concurrent updates from other shards commutative.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.dynamo import to_value
from shared.usage.buckets import LEVELS, bucket_code, bucket_start
from shared.usage.extract import Contribution


def encode_position(sequence_number: str) -> str:
    """Kinesis sequence numbers are decimal strings of varying length; length-prefixing makes
    DynamoDB's string comparison agree with numeric order."""
    return f"{len(sequence_number):03d}{sequence_number}"


def dims_hash(dims: tuple[tuple[str, str], ...]) -> str:
    if not dims:
        return "-"
    raw = "\x1f".join(f"{k}\x1e{v}" for k, v in dims)
    return hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


def partition(meter_id: str, subject: str) -> str:
    return f"{meter_id}#{subject}"


@dataclass
class PendingCounter:
    pk: str
    sk: str
    subject: str
    dims: tuple[tuple[str, str], ...]
    # (position, count, total) per contributing record, in stream order
    parts: list[tuple[str, int, Decimal]] = field(default_factory=list)

    def totals(self, after: str | None = None) -> tuple[int, Decimal, str | None, str | None]:
        count, total, first, last = 0, Decimal(0), None, None
        for pos, c, s in self.parts:
            if after is not None and pos <= after:
                continue
            count += c
            total += s
            first = first or pos
            last = pos
        return count, total, first, last


def pre_aggregate(items: Iterable[tuple[str, Contribution]]) -> dict[tuple[str, str], PendingCounter]:
    """Fold (position, contribution) pairs into one pending update per counter item."""
    pending: dict[tuple[str, str], PendingCounter] = {}
    for pos, c in items:
        pk = partition(c.meter_id, c.subject)
        dh = dims_hash(c.dims)
        for level, _ in LEVELS:
            sk = f"{level}#{bucket_code(bucket_start(level, c.minute))}#{dh}"
            counter = pending.get((pk, sk))
            if counter is None:
                counter = pending[(pk, sk)] = PendingCounter(pk, sk, c.subject, c.dims)
            if counter.parts and counter.parts[-1][0] == pos:
                last = counter.parts[-1]
                counter.parts[-1] = (pos, last[1] + c.count, last[2] + c.total)
            else:
                counter.parts.append((pos, c.count, c.total))
    return pending


class CounterWriter:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def apply(self, counter: PendingCounter, shard: str, step: Callable[[str], None] | None = None) -> bool:
        """Apply a pending counter once. Returns False when the stream had already applied it."""
        count, total, first, last = counter.totals()
        if first is None:
            return False
        marker = f"ap#{shard}"
        try:
            self._update(
                counter,
                marker,
                count,
                total,
                last,  # type: ignore[arg-type]
                "attribute_not_exists(#ap) OR #ap < :first",
                {":first": to_value(first)},
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        # A replay: part of this batch was applied before. Add only what came after that point.
        for _ in range(5):
            item = self.client.get_item(
                TableName=self.table,
                ConsistentRead=True,
                Key={"pk": {"S": counter.pk}, "sk": {"S": counter.sk}},
            ).get("Item", {})
            applied = item.get(marker, {}).get("S")
            count, total, first, last = counter.totals(after=applied)
            if first is None:
                return False
            try:
                self._update(
                    counter,
                    marker,
                    count,
                    total,
                    last,  # type: ignore[arg-type]
                    "#ap = :applied",
                    {":applied": to_value(applied)},
                )
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        raise RuntimeError(f"counter {counter.pk}/{counter.sk} kept changing under shard {shard}")

    def _update(
        self,
        counter: PendingCounter,
        marker: str,
        count: int,
        total: Decimal,
        last: str,
        condition: str,
        extra_values: dict[str, Any],
    ) -> None:
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": counter.pk}, "sk": {"S": counter.sk}},
            UpdateExpression="ADD c :c, s :s SET #ap = :last, #sub = :sub, d = :d",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#ap": marker, "#sub": "sub"},
            ExpressionAttributeValues={
                ":c": to_value(count),
                ":s": to_value(total),
                ":last": to_value(last),
                ":sub": to_value(counter.subject),
                ":d": to_value(dict(counter.dims)),
                **extra_values,
            },
        )
