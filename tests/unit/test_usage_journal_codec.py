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


def test_a_record_too_large_alone_is_split_by_meter_and_each_contribution_counts_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rnd = random.Random(2)
    parts = [part("0050", f"meter-{m}", str(rnd.randrange(10**30))) for m in range(12)]
    monkeypatch.setattr(journal, "MAX_PARTS_BYTES", 200)
    chunks = journal._chunks("0050", "0050", parts)
    assert len(chunks) > 1
    assert [hi for _, hi, _, _ in chunks] == [f"0050#{n}" for n in range(len(chunks))]
    assert [p for _, _, chunk, _ in chunks for p in chunk] == parts
    # Journaled twice (a retry, another cut): every (position, meter) still counts once.
    items = [TailItem(f"{hi}#{lo}", 0, 0, chunk) for lo, hi, chunk, _ in chunks]
    tail = Tail("shard-0", items=items + [TailItem("0050#0049", 0, 0, parts + [part("0049")])])
    assert sorted((pos, c.meter_id) for pos, c in tail.pending()) == sorted(
        [("0049", "m1")] + [("0050", f"meter-{m}") for m in range(12)]
    )
    assert tail.last_position() == "0050"


def test_long_unique_values_are_journaled_as_stored() -> None:
    """unique_count values over 200 bytes are kept as a hash (counters.member_key) in the journal
    too: a record's contributions stay small whatever its data."""
    long_value = "u" * 5000
    ((_pos, c),) = decode_parts(encode_parts([part("0011", unique=long_value)]))
    assert c.unique is not None and c.unique.startswith("h:") and len(c.unique) < 40
