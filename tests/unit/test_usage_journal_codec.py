"""The usage journal's item codec and its split of a batch too large for one item (journal.py)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.meters.models import Aggregation
from shared.usage import journal
from shared.usage.extract import Contribution
from shared.usage.journal import Tail, TailItem, decode_parts, encode_parts


def part(
    pos: str, meter: str = "m1", value: str = "1.5", unique: str | None = None
) -> tuple[str, Contribution]:
    minute = datetime(2026, 3, 1, 10, 7, tzinfo=UTC)
    agg = Aggregation.UNIQUE_COUNT if unique else Aggregation.SUM
    return pos, Contribution(meter, agg, "acme", minute, (("model", "gpt"),), Decimal(value), "k", unique)


def test_contributions_round_trip_exactly() -> None:
    parts = [
        part("0011", value="0.000000000000000001"),
        part("0012", "m2", "0", "user-7"),
        part("0012", "m3"),
    ]
    assert decode_parts(encode_parts(parts)) == parts


def test_a_batch_too_large_for_one_item_is_split_by_record_into_named_sub_ranges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two contributions per record, incompressible values: each record ~2 x 40 bytes.
    rnd = random.Random(1)
    parts = []
    for i in range(10, 74):
        for meter in ("m1", "m2"):
            parts.append(part(f"0{i}", meter, str(rnd.randrange(10**30))))
    monkeypatch.setattr(journal, "MAX_PARTS_BYTES", 600)
    chunks = journal._chunks("010", "073", parts)
    assert len(chunks) > 2
    # The chunks cover the batch's range end to end, in order, each within the limit...
    assert chunks[0][0] == "010" and chunks[-1][1] == "073"
    for (_, hi, _, _), (lo, _, _, _) in itertools.pairwise(chunks):
        assert hi < lo
    assert all(len(blob) <= 600 for *_, blob in chunks)
    # ...a record's contributions are never split, and nothing is lost or repeated.
    assert [p for _, _, chunk, _ in chunks for p in chunk] == parts
    for _, _, chunk, blob in chunks:
        assert decode_parts(blob) == chunk
        assert {pos for pos, _ in chunk} and all(pos for pos, _ in chunk)


def test_overlapping_items_count_each_record_once_and_skip_what_was_flushed() -> None:
    """A whole batch journaled, then its halves (a bisected retry): three items, one record set."""
    whole = TailItem("0014#0011", 0, 0, [part("0011"), part("0012"), part("0014")])
    first = TailItem("0012#0011", 0, 0, [part("0011"), part("0012")])
    second = TailItem("0014#0014", 0, 0, [part("0014")])
    tail = Tail("shard-0", flushed="0011", items=[whole, first, second])
    assert [pos for pos, _ in tail.pending()] == ["0012", "0014"]
    assert tail.last_position() == "0014"
