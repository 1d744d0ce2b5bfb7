"""Query windows in an IANA time zone (engine-rules §2.2: DST-safe calendar days and months).

Windows are half-open [start, end) in UTC. Day and month windows start at local midnight, so a
DST day is 23 or 25 hours long; hour windows follow the local clock (at :30 in +05:30 zones).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

GRANULARITIES = ("PT1M", "PT1H", "P1D", "P1M")


def _local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    # fold=0 gives the first occurrence of an ambiguous midnight, and for a midnight that does
    # not exist (a DST jump at 00:00) the instant the gap starts: in both cases the day's start.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def window_start(t: datetime, granularity: str, tz: ZoneInfo) -> datetime:
    local = t.astimezone(tz)
    if granularity == "PT1M":
        return t.replace(second=0, microsecond=0)
    if granularity == "PT1H":
        return (local.replace(minute=0, second=0, microsecond=0)).astimezone(UTC)
    if granularity == "P1D":
        return _local_midnight(local, tz)
    return _local_midnight(local.replace(day=1), tz)


def next_window(start: datetime, granularity: str, tz: ZoneInfo) -> datetime:
    if granularity == "PT1M":
        return start + timedelta(minutes=1)
    if granularity == "PT1H":
        # The next local top of the hour: an hour later, re-floored in case the offset changed.
        nxt = start + timedelta(hours=1)
        floored = window_start(nxt, "PT1H", tz)
        return floored if floored > start else nxt
    local = start.astimezone(tz)
    if granularity == "P1D":
        day = local.replace(hour=12) + timedelta(days=1)
        return _local_midnight(day, tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return _local_midnight(datetime(year, month, 1), tz)


def windows(
    start: datetime, end: datetime, granularity: str, tz: ZoneInfo
) -> Iterator[tuple[datetime, datetime]]:
    """Every window that overlaps [start, end), in order."""
    ws = window_start(start, granularity, tz)
    while ws < end:
        we = next_window(ws, granularity, tz)
        yield ws, we
        ws = we


def count_windows(start: datetime, end: datetime, granularity: str, tz: ZoneInfo) -> int:
    """How many windows overlap [start, end), computed without walking them (so a limit can be
    checked on the requested range before any read). Exact, except PT1H in zones whose offset
    changes within the range: at most one more than the truth."""
    if end <= start:
        return 0
    if granularity == "PT1M":
        return -(-(end - start) // timedelta(minutes=1))
    if granularity == "PT1H":
        return -(-(end - start) // timedelta(hours=1)) + 1
    first, last = start.astimezone(tz), (end - timedelta(microseconds=1)).astimezone(tz)
    if granularity == "P1D":
        return (last.date() - first.date()).days + 1
    return (last.year - first.year) * 12 + last.month - first.month + 1
