"""Usage bucket levels and the decomposition of a time range into them.

Two kinds of usage items (counters.py):

- Slotted items, for the additive meters (count, sum, avg): a day item with 24 hour slots and an
  hour item with 60 minute slots. Every current zone offset and every window edge falls on a
  minute, so any window is a few (item, slot range) pieces (`slot_pieces`): a UTC day is one day
  item, a +05:30 day is two day items' hour slots and two hour items' minute slots, a PT1M window
  is one slot of an hour item.
- Bucketed items, for min/max/latest counters: one item per UTC-aligned day (D), hour (H) or
  minute (M) bucket (`decompose`). A window is whole buckets, finer ones at its edges: a UTC month
  of days is 30 D items, a +05:30 day 30 M + 23 H + 30 M items.
- unique_count keeps day members and minute member sets, no hour level (`MEMBER_LEVELS`): an hour
  is the union of its minutes' sets, which one Query reads (a minute set holds all of the minute's
  values in one item, so the hour's sets are fewer bytes than its members would be, and the hour
  members cost a write per distinct value and hour on the hot path).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# (level, length) from coarsest to finest.
LEVELS: tuple[tuple[str, timedelta], ...] = (
    ("D", timedelta(days=1)),
    ("H", timedelta(hours=1)),
    ("M", timedelta(minutes=1)),
)
LEVEL_LENGTH = dict(LEVELS)
MEMBER_LEVELS: tuple[tuple[str, timedelta], ...] = tuple(lv for lv in LEVELS if lv[0] != "H")
# Slotted items: how many slots a level's item has (hours of a day, minutes of an hour).
SLOTS = {"D": 24, "H": 60}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)


def bucket_start(level: str, t: datetime) -> datetime:
    t = t.astimezone(UTC).replace(second=0, microsecond=0)
    if level == "M":
        return t
    if level == "H":
        return t.replace(minute=0)
    return t.replace(hour=0, minute=0)


def slot_of(level: str, t: datetime) -> int:
    """The slot a minute falls in, in the level's slotted item (hour of day, minute of hour)."""
    t = t.astimezone(UTC)
    return t.hour if level == "D" else t.minute


def bucket_code(t: datetime) -> str:
    """Fixed-width, sortable: YYYYMMDDHHMM (UTC)."""
    t = t.astimezone(UTC)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}"


def parse_bucket_code(code: str) -> datetime:
    # Slicing, not strptime: a long query range parses tens of thousands of codes.
    return datetime(
        int(code[:4]), int(code[4:6]), int(code[6:8]), int(code[8:10]), int(code[10:12]), tzinfo=UTC
    )


def _aligned(t: datetime, length: timedelta) -> bool:
    return (t - _EPOCH) % length == timedelta(0)


def decompose(
    start: datetime, end: datetime, levels: tuple[tuple[str, timedelta], ...] = LEVELS
) -> list[tuple[str, datetime]]:
    """Cover [start, end) (minute-aligned) with the fewest aligned buckets of `levels` (coarsest
    first, ending with minutes), greedily."""
    out: list[tuple[str, datetime]] = []
    t = start
    while t < end:
        for level, length in levels:
            if _aligned(t, length) and t + length <= end:
                out.append((level, t))
                t += length
                break
        else:  # pragma: no cover - minute alignment is checked by callers
            raise ValueError("range must be minute-aligned")
    return out


def slot_pieces(start: datetime, end: datetime) -> list[tuple[str, datetime, int, int]]:
    """Cover [start, end) (minute-aligned) with slotted items: (level, bucket start, first slot,
    end slot). Whole UTC hours are a day item's hour slots, the rest an hour item's minute slots."""
    out: list[tuple[str, datetime, int, int]] = []
    t = start
    while t < end:
        hour = bucket_start("H", t)
        if t == hour and t + _HOUR <= end:
            day = bucket_start("D", t)
            hours = (min(end, day + timedelta(days=1)) - t) // _HOUR
            out.append(("D", day, t.hour, t.hour + hours))
            t += hours * _HOUR
            continue
        if t.second or t.microsecond:  # pragma: no cover - minute alignment is checked by callers
            raise ValueError("range must be minute-aligned")
        stop = min(end, hour + _HOUR)
        out.append(("H", hour, t.minute, t.minute + (stop - t) // _MINUTE))
        t = stop
    return out
