"""The S3 archive of stored events: the two-year history, queryable with Athena (Glue table in infra/).

One object per aggregator batch ("part") and event day: gzipped JSON lines under
`events/year=YYYY/month=MM/day=DD/<shard>-<first sequence>-<last sequence>.json.gz`, where the
first sequence names the batch that claimed the events (their claim's group) and the last one the
part's last record. The key is derived from the records alone, so writing a part again overwrites
the same object (gzip without a timestamp: the same bytes, too).

A replay that finds its events already claimed can't know which of them an earlier attempt
archived, and its batch may be cut differently (Lambda bisects failed batches): it reads the
group's existing objects of that day (`existing_keys`, listed by the group's prefix) and archives
only the events none of them holds. So an event lands in exactly one object.

Each line: the event's `id`, `source`, `type`, `subject`, `time` (the index time), `event` (the
whole CloudEvent as received), `ingested_at`, `stored_at`, `validation_errors` (a list).
"""

from __future__ import annotations

import gzip
from datetime import date
from typing import Any

import orjson

from shared.aws.resources import EVENTS_ARCHIVE_PREFIX
from shared.events.blocks import event_key


def day_prefix(day: date) -> str:
    return f"{EVENTS_ARCHIVE_PREFIX}year={day.year:04d}/month={day.month:02d}/day={day.day:02d}/"


def object_key(day: date, group: str, last_sequence: str) -> str:
    return f"{day_prefix(day)}{group}-{last_sequence}.json.gz"


def line(record: dict[str, Any]) -> dict[str, Any]:
    event = record["e"]
    return {
        "id": event["id"],
        "source": event["source"],
        "type": event["type"],
        "subject": event["subject"],
        "time": record["t"],
        "event": event,
        "ingested_at": record.get("i") or record["s"],
        "stored_at": record["s"],
        "validation_errors": record.get("v") or [],
    }


def encode(records: list[dict[str, Any]]) -> bytes:
    body = b"".join(orjson.dumps(line(r)) + b"\n" for r in records)
    return gzip.compress(body, compresslevel=6, mtime=0)


def decode_keys(body: bytes) -> set[str]:
    keys = set()
    for raw in gzip.decompress(body).splitlines():
        if raw:
            rec = orjson.loads(raw)
            keys.add(event_key(str(rec["source"]), str(rec["id"])))
    return keys


class Archive:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, records: list[dict[str, Any]]) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=encode(records),
            ContentType="application/gzip",
        )

    def existing_keys(self, day: date, group: str) -> set[str]:
        """The event keys in the group's objects of that day (S3 lists are strongly consistent)."""
        keys: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{day_prefix(day)}{group}-"):
            for obj in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                keys |= decode_keys(body)
        return keys
