"""Slotted usage items: how windows decompose into slot ranges, and the member-set spill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.usage.buckets import SLOTS, slot_pieces
from shared.usage.counters import CounterWriter, MemberSet

T = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_utc_day_is_one_day_item_and_a_kolkata_day_four_slot_ranges() -> None:
    assert slot_pieces(T, T + timedelta(days=1)) == [("D", T, 0, 24)]
    start = T - timedelta(hours=5, minutes=30)  # Asia/Kolkata midnight
    assert slot_pieces(start, start + timedelta(days=1)) == [
        ("H", start.replace(minute=0), 30, 60),
        ("D", T - timedelta(days=1), 19, 24),
        ("D", T, 0, 18),
        ("H", T.replace(hour=18), 0, 30),
    ]


def test_a_minute_is_one_slot_of_its_hour_item() -> None:
    t = T.replace(hour=10, minute=14)
    assert slot_pieces(t, t + timedelta(minutes=1)) == [("H", T.replace(hour=10), 14, 15)]


@settings(deadline=None)  # no timing in tests: the machine may be busy
@given(
    st.integers(min_value=0, max_value=3 * 24 * 60),
    st.integers(min_value=1, max_value=3 * 24 * 60),
)
def test_pieces_cover_the_range_exactly_once(offset: int, length: int) -> None:
    start = T + timedelta(minutes=offset)
    covered: list[range] = []  # minutes since T, piece by piece
    for level, bucket, first, stop in slot_pieces(start, start + timedelta(minutes=length)):
        assert 0 <= first < stop <= SLOTS[level]
        base = (bucket - T) // timedelta(minutes=1)
        size = 60 if level == "D" else 1
        covered.append(range(base + first * size, base + stop * size))
    assert [m for r in covered for m in r] == list(range(offset, offset + length))


class TooLargeClient:
    """Refuses the set update as DynamoDB does past 400 KB; records the puts that follow."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []

    def update_item(self, **_: Any) -> None:
        error = {
            "Code": "ValidationException",
            "Message": "Item size to update has exceeded the maximum allowed size",
        }
        raise ClientError({"Error": error}, "UpdateItem")

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        for requests in RequestItems.values():
            self.puts.extend(r["PutRequest"]["Item"] for r in requests)
        return {}


def test_a_member_set_past_the_item_limit_spills_into_member_items() -> None:
    client = TooLargeClient()
    member_set = MemberSet("U#m#acme#M20260301", "M#202603011014#-", "acme", (), {"u1", "u2"})
    CounterWriter(client, "usage").add_members(member_set)
    assert sorted(i["sk"]["S"] for i in client.puts) == [
        "M#202603011014#-#u1",
        "M#202603011014#-#u2",
    ]
    assert {i["pk"]["S"] for i in client.puts} == {"U#m#acme#M20260301"}
