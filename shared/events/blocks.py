"""Hot event blocks (events table): the recent stored events `GET /events` lists, compressed.

A block holds the events one aggregator batch stored within one UTC hour of each listing instant
(event time, ingested_at, stored_at): nearly always one block per batch. Its events are a
zlib-compressed JSON list (~60 B an event instead of a ~570 B item), so storing a batch of ~100
events costs a few write units instead of one per event and index.

Each listing order has one index whose entries are the blocks' lowest sort keys (`<order>pk` =
`<T|I|S>#<yyyy-mm-dd>`, `<order>sk` = the lowest `<sortable instant>#<event key>` in the block),
projecting the highest sort key, the event count and the expiry, so a listing knows a block's
span without reading it. Because a block never spans more than `BLOCK_SPAN` of an order, a walk
knows when no unread block can hold an event before (or after) a position: the listing merges
blocks exactly without reading a whole day (see listing.py).

Blocks live `HOT_WINDOW` after they were stored: longer than the listing's default window plus
the one day an event time may run ahead of its receipt, so every event the default window can
show is still here. The dedupe claims (store.py) live `DEDUPE_WINDOW`. Older events are in the
S3 archive only (archive.py).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.core.timeutil import parse_rfc3339
from shared.events.keys import sortable

DEDUPE_WINDOW = timedelta(days=32)
HOT_WINDOW = timedelta(days=33)
BLOCK_SPAN = timedelta(hours=1)
BLOCK_PREFIX = "B#"

# order -> (partition attribute, sort attribute, highest-key attribute, partition prefix, index name)
ORDERS: dict[str, tuple[str, str, str, str, str]] = {
    "time": ("tpk", "tsk", "thi", "T", "blocks_by_time"),
    "ingested_at": ("ipk", "isk", "ihi", "I", "blocks_by_ingested"),
    "stored_at": ("spk", "ssk", "shi", "S", "blocks_by_stored"),
}


def event_key(source: str, event_id: str) -> str:
    return f"{source}\x1f{event_id}"


# -- one stored event -----------------------------------------------------------------------------
# A stored event in a block (and in an archive line) is a dict:
#   e: the event as received (orjson.Fragment when written: its JSON as the aggregator checked it)
#   t: the index time (the event's own, or its ingestion time when that can't be used)
#   i: ingested_at, s: stored_at, v: validation errors (list, absent when none)
def instant(record: dict[str, Any], order: str) -> datetime:
    if order == "time":
        return parse_rfc3339(record["t"])
    if order == "ingested_at" and record.get("i"):
        try:
            return parse_rfc3339(record["i"])
        except ValueError:
            pass
    return parse_rfc3339(record["s"])


def record_key(record: dict[str, Any]) -> str:
    event = record["e"]
    return event_key(str(event["source"]), str(event["id"]))


def sort_key(record: dict[str, Any], order: str) -> str:
    return f"{sortable(instant(record, order))}#{record_key(record)}"


def listed(record: dict[str, Any]) -> dict[str, Any]:
    """The shape the listing and its views read: the event, its instants and its errors."""
    event = record["e"]
    return {
        "pk": record_key(record),
        "event": event,
        "time": record["t"],
        "subject": str(event["subject"]),
        "type": str(event["type"]),
        "ingested_at": record.get("i") or "",
        "stored_at": record["s"],
        "validation_errors": record.get("v") or None,
    }


# -- blocks -----------------------------------------------------------------------------------------
def block_items(
    part: str, records: list[dict[str, Any]], keys: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The block items (DynamoDB JSON) for one part's records: one per hour of each instant.

    `keys` maps each record's event key to its sort key per order (computed once by the caller).
    The item key is derived from the part and the hours only, so writing the same part again
    overwrites the same items."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        own = keys[record_key(rec)]
        groups[(own["time"][:13], own["ingested_at"][:13], own["stored_at"][:13])].append(rec)
    items = []
    for hours, members in sorted(groups.items()):
        item: dict[str, Any] = {
            "pk": {"S": f"{BLOCK_PREFIX}{part}#{'#'.join(hours)}"},
            "b": {"B": zlib.compress(orjson.dumps(members))},
            "n": {"N": str(len(members))},
        }
        for order, (pk_attr, sk_attr, hi_attr, prefix, _index) in ORDERS.items():
            sks = sorted(keys[record_key(m)][order] for m in members)
            item[pk_attr] = {"S": f"{prefix}#{sks[0][:10]}"}
            item[sk_attr] = {"S": sks[0]}
            item[hi_attr] = {"S": sks[-1]}
        stored = max(parse_rfc3339(m["s"]) for m in members)
        item["expires_at"] = {"N": str(int((stored + HOT_WINDOW).timestamp()))}
        items.append(item)
    return items


def block_records(item: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = orjson.loads(zlib.decompress(item["b"]["B"]))
    return records
