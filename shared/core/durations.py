"""ISO-8601 durations as calendar steps: usage periods, grant recurrences and expirations.

A step like `P1M` is applied as `anchor + k·step` from the anchor each time, never by adding one
step to the previous instant, so month ends don't drift (Jan 31 → Feb 28 → Mar 31, not Mar 28).
Calendar parts (years, months, weeks, days) are added in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(text: str) -> relativedelta:
    """`P1M`, `PT1H`, `P1DT12H`, ... as a relativedelta; ValueError for anything else."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    n = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    return relativedelta(
        years=n.get("years", 0),
        months=n.get("months", 0),
        weeks=n.get("weeks", 0),
        days=n.get("days", 0),
        hours=n.get("hours", 0),
        minutes=n.get("minutes", 0),
        seconds=n.get("seconds", 0),
    )


# The longest duration accepted as input (usage periods, recurrences, cadences, phases): with every
# instant inside the engine's range (before 2200, shared/core/timeutil.py) a step of at most a
# century stays far from year 9999, where datetime arithmetic overflows.
MAX_YEARS = 100
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


def longer_than_max(text: str) -> bool:
    """True when the duration `text` (already parsed once) is longer than MAX_YEARS years."""
    try:
        return _REFERENCE + parse_duration(text) > _REFERENCE.replace(year=_REFERENCE.year + MAX_YEARS)
    except (OverflowError, ValueError):  # beyond year 9999 (or a part too large for the calendar)
        return True


def step(anchor: datetime, duration: str, k: int) -> datetime:
    """anchor + k·duration (k may be negative)."""
    d = parse_duration(duration)
    return anchor + relativedelta(
        years=d.years * k,
        months=d.months * k,
        days=d.days * k,
        hours=d.hours * k,
        minutes=d.minutes * k,
        seconds=d.seconds * k,
    )


def _approx(duration: str) -> timedelta:
    d = parse_duration(duration)
    return timedelta(
        days=d.years * 365.2425 + d.months * 30.436875 + d.days,
        hours=d.hours,
        minutes=d.minutes,
        seconds=d.seconds,
    )


def index_at(anchor: datetime, duration: str, t: datetime) -> int:
    """The k with anchor + k·d <= t < anchor + (k+1)·d."""
    k = int((t - anchor) / _approx(duration))
    while step(anchor, duration, k) > t:
        k -= 1
    while step(anchor, duration, k + 1) <= t:
        k += 1
    return k


def instants(anchor: datetime, duration: str, start: datetime, end: datetime) -> list[datetime]:
    """Every anchor + k·d in [start, end), in order."""
    k = index_at(anchor, duration, start)
    out = []
    while (at := step(anchor, duration, k)) < end:
        if at >= start:
            out.append(at)
        k += 1
    return out
