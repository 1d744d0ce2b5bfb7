"""Storing a batch's owned events exactly once: dedupe claims, hot blocks, the S3 archive.

Writes, in this order (the aggregator's step 3; each write is followed by a `step` hook so tests
can kill the handler after it):

1. `events:<n>` - the claims of the newly owned events (chunks of 25): `pk` = the event key,
   `claim` = `<shard>/<position>` of the record that owns it, `grp` = `<shard>-<sequence>` of
   the first record this batch claimed, `stored_at`, and a TTL at `DEDUPE_WINDOW`. The claim is
   what dedupe reads; it names its owner so that a replay of the very record still owns it.
2. per (group, event day): `blocks:<n>` - the hot blocks of the events not yet archived, then
   `archive:<n>` - their archive object.

A replay (records already claimed by themselves) takes `grp` and `stored_at` from its claims, so
it rebuilds the same records, and asks the archive which of its group's events an earlier attempt
archived (archive.py); the rest are written again. Blocks precede their archive object, so an
archived event's block exists; a block written again under another part (a batch cut differently
on retry) holds a copy of an event already listed, with the same sort keys in every order: the
listing drops such copies (adjacent, equal keys). The archive never holds an event twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.aws.dynamo import batch_get, batch_put
from shared.core.timeutil import format_rfc3339
from shared.events.archive import Archive, object_key
from shared.events.blocks import DEDUPE_WINDOW, ORDERS, block_items, sort_key

Step = Callable[[str], None]


@dataclass(frozen=True)
class Claim:
    owner: str  # `<shard>/<position>` of the record that owns the event
    group: str  # `<shard>-<sequence>`: the batch that claimed it (names its archive objects)
    stored_at: str


@dataclass
class Owned:
    """An owned record, evaluated: what to store for it."""

    key: str
    shard: str
    sequence: str
    owner: str
    day: date  # UTC day of the index time (its archive partition)
    record: dict[str, Any]  # e, t, i, v (blocks.py); `s` is set when stored


class EventStore:
    def __init__(self, client: Any, table: str, archive: Archive, pool: Executor) -> None:
        self.client = client
        self.table = table
        self.archive = archive
        self.pool = pool

    def claims(self, keys: list[str]) -> dict[str, Claim]:
        """The claims of these event keys (consistent reads: a claim just written must be seen)."""
        items = batch_get(self.client, self.table, [{"pk": {"S": k}} for k in keys])
        out = {}
        for item in items:
            if "pk" not in item:
                continue
            owner = item.get("claim", {}).get("S", "")
            out[item["pk"]["S"]] = Claim(
                owner,
                # Claims written before groups existed: the record's own (a replay of one is alone).
                item.get("grp", {}).get("S") or owner.replace("/", "-", 1),
                item.get("stored_at", {}).get("S", ""),
            )
        return out

    def store(self, owned: list[Owned], claims: dict[str, Claim], now: datetime, step: Step) -> int:
        """Claim the new ones, then write blocks and archive objects; returns how many were new."""
        new = [o for o in owned if o.key not in claims]
        stored_at = format_rfc3339(now)
        if new:
            group = f"{new[0].shard}-{new[0].sequence}"
            expires = int((now + DEDUPE_WINDOW).timestamp())
            items = [
                {
                    "pk": {"S": o.key},
                    "claim": {"S": o.owner},
                    "grp": {"S": group},
                    "stored_at": {"S": stored_at},
                    "expires_at": {"N": str(expires)},
                }
                for o in new
            ]

            def put_claims(start: int) -> None:
                batch_put(self.client, self.table, items[start : start + 25])
                step(f"events:{start // 25}")

            list(self.pool.map(put_claims, range(0, len(items), 25)))
            for o in new:
                claims[o.key] = Claim(o.owner, group, stored_at)

        groups: dict[tuple[str, date], list[Owned]] = defaultdict(list)
        for o in owned:
            claim = claims[o.key]
            o.record["s"] = claim.stored_at or stored_at
            groups[(claim.group, o.day)].append(o)
        # A batch holding any event it claimed before is a replay: an earlier attempt may have
        # archived some of its groups' events (rare: crashes and Lambda retries only).
        replay = len(new) < len(owned)
        written = 0
        for (group, day), members in groups.items():
            if replay:
                done = self.archive.existing_keys(day, group)
                members = [o for o in members if o.key not in done]
            if not members:
                continue
            first, last = members[0], members[-1]
            records = [o.record for o in members]
            keys = {o.key: {order: sort_key(o.record, order) for order in ORDERS} for o in members}
            # Keyed by the part's own first and last record: parts of different cuts never share
            # both, so a block is only ever overwritten by the same events.
            blocks = block_items(f"{first.shard}-{first.sequence}-{last.sequence}", records, keys)

            def put_blocks(start: int, blocks: list[dict[str, Any]] = blocks, n: int = written) -> None:
                batch_put(self.client, self.table, blocks[start : start + 25])
                step(f"blocks:{n}.{start // 25}")

            list(self.pool.map(put_blocks, range(0, len(blocks), 25)))
            self.archive.put(object_key(day, group, last.sequence), records)
            step(f"archive:{written}")
            written += 1
        return len(new)
