"""Index keys of stored events (events table), shared by the writer and the list endpoint.

Each listing order (event time, ingested_at, stored_at) has its own GSI. Partitions are per UTC
day and split into LIST_SHARDS by a hash of the event key, so a busy day never concentrates its
writes on one GSI partition; a listing merges the shards of each day it walks.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

LIST_SHARDS = 8
# index name -> (partition attribute, sort attribute, partition prefix, stored field)
ORDERS: dict[str, tuple[str, str, str, str]] = {
    "time": ("gsi1pk", "gsi1sk", "T", "time"),
    "ingested_at": ("gsi2pk", "gsi2sk", "I", "ingested_at"),
    "stored_at": ("gsi3pk", "gsi3sk", "S", "stored_at"),
}
INDEX_NAMES = {"time": "by_time", "ingested_at": "by_ingested", "stored_at": "by_stored"}


def sortable(t: datetime) -> str:
    """Fixed width (four-digit year, always microseconds) so that string order is time order."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def list_shard(event_key: str) -> int:
    return hashlib.blake2b(event_key.encode(), digest_size=2).digest()[0] % LIST_SHARDS


def index_attributes(event_key: str, times: dict[str, datetime]) -> dict[str, Any]:
    """`times` maps each order name ("time", "ingested_at", "stored_at") to its instant."""
    shard = list_shard(event_key)
    attrs: dict[str, Any] = {}
    for order, (pk_attr, sk_attr, prefix, _field) in ORDERS.items():
        t = times[order]
        attrs[pk_attr] = f"{prefix}#{t.astimezone(UTC).date().isoformat()}#{shard}"
        attrs[sk_attr] = f"{sortable(t)}#{event_key}"
    return attrs
