"""Usage bucket levels and the decomposition of a time range into them.

Counters are kept at four UTC-aligned levels: minute (M), quarter hour (Q), hour (H) and day (D).
Any window in any IANA zone has minute-aligned edges, and every current zone offset is a
multiple of 15 minutes, so a window decomposes into a handful of coarse buckets plus finer
ones at its edges: a UTC month of days is 30 D items, a +05:30 day is 4 Q + 23 H items, and no
query reads minute items except for ranges that begin or end off the quarter hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# (level, length) from coarsest to finest.
LEVELS: tuple[tuple[str, timedelta], ...] = (
    ("D", timedelta(days=1)),
    ("H", timedelta(hours=1)),
    ("Q", timedelta(minutes=15)),
    ("M", timedelta(minutes=1)),
)
LEVEL_LENGTH = dict(LEVELS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_start(level: str, t: datetime) -> datetime:
    t = t.astimezone(UTC).replace(second=0, microsecond=0)
    if level == "M":
        return t
    if level == "Q":
        return t.replace(minute=t.minute - t.minute % 15)
    if level == "H":
        return t.replace(minute=0)
    return t.replace(hour=0, minute=0)


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


def decompose(start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    """Cover [start, end) (minute-aligned) with the fewest aligned buckets, greedily."""
    out: list[tuple[str, datetime]] = []
    t = start
    while t < end:
        for level, length in LEVELS:
            if _aligned(t, length) and t + length <= end:
                out.append((level, t))
                t += length
                break
        else:  # pragma: no cover - minute alignment is checked by callers
            raise ValueError("range must be minute-aligned")
    return out
