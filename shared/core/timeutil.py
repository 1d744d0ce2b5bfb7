"""Time helpers: everything is timezone-aware UTC inside; RFC 3339 on the wire.

One formatter and one parser for every date-time the API and the pipeline read or write. They
cover RFC 3339's whole range (years 0001-9999, any offset, any number of fraction digits; Python
keeps microseconds) and round-trip: parse(format(t)) == t.

What the engine aggregates is narrower (docs/architecture.md, "Accepted time range"): instants
within [EARLIEST_INSTANT, LATEST_INSTANT], and event times no later than a day after receipt.
Inside that range minute/day/month buckets, TTL epochs and time-zone conversions can't overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol

# RFC 3339 date-time: date, 'T' (or space), time, optional fraction, mandatory offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_REASON = "must be an RFC 3339 date-time with a time zone offset"

# The engine's range. 1970: the Unix epoch (DynamoDB TTLs are epoch seconds) and before any usage
# anyone bills for; 2200: beyond any billing horizon, while a whole-range query stays a bounded
# number of day buckets and nothing comes near year 9999, where window ends and zone shifts overflow.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
# How far ahead of its receipt an event may be stamped: client clock skew and day-boundary
# batching, not scheduling; the same allowance `GET /events` adds to its default window.
EVENT_FUTURE_ALLOWANCE = timedelta(days=1)


class Clock:
    """Injectable clock; tests freeze it."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class CustomerClock(Protocol):
    """ "Now" as one customer sees it: a test clock's frozen time for a customer created on one,
    wall time for everyone else (shared/testclocks/resolver.py is the implementation)."""

    def now_for(self, customer_id: str) -> datetime: ...

    def clock_of(self, customer_id: str) -> str | None:
        """The test clock the customer lives on, if any."""
        ...


class WallClock:
    """Every customer on one `Clock` (no test clocks): the default, and what unit tests use."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()

    def now_for(self, customer_id: str) -> datetime:
        return self.clock.now()

    def clock_of(self, customer_id: str) -> str | None:
        return None


def parse_rfc3339(value: object) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ValueError otherwise."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(_REASON)
    text = value.replace("z", "Z").replace("t", "T")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds; drop finer digits
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # e.g. month 13, or 0001-01-01T00:00+01:00 (year 0)
        raise ValueError(f"{_REASON} within years 0001-9999 in UTC ({exc})") from None


_LEGACY_YEAR = re.compile(r"^(\d{1,3})-")


def parse_stored(value: object) -> datetime:
    """`parse_rfc3339` for values read back from storage, which also takes the unpadded years
    (`999-01-01T00:00:00Z`) that releases before the four-digit formatter wrote."""
    try:
        return parse_rfc3339(value)
    except ValueError:
        if isinstance(value, str) and (m := _LEGACY_YEAR.match(value)):
            return parse_rfc3339(f"{int(m.group(1)):04d}" + value[m.end(1) :])
        raise


def format_rfc3339(value: datetime) -> str:
    """UTC with a 'Z' suffix and a four-digit year; milliseconds when present, microseconds when
    finer. Raises ValueError for an instant whose UTC form is outside years 0001-9999."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{value!r} is outside years 0001-9999 in UTC") from exc
    if not utc.microsecond:
        spec = "seconds"
    elif utc.microsecond % 1000:
        spec = "microseconds"
    else:
        spec = "milliseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def format_optional(value: datetime | None) -> str | None:
    return format_rfc3339(value) if value is not None else None


def parse_optional(value: object) -> datetime | None:
    """None for a missing or empty value, else `parse_rfc3339`."""
    return parse_rfc3339(value) if value else None


def instant_problem(value: datetime) -> str | None:
    """Why the engine can't work with this instant, or None."""
    if value < EARLIEST_INSTANT or value > LATEST_INSTANT:
        return f"must be within {format_rfc3339(EARLIEST_INSTANT)} and {format_rfc3339(LATEST_INSTANT)}"
    return None


def event_time_problem(value: datetime, received_at: datetime) -> str | None:
    """Why an event stamped `value` and received at `received_at` can't be metered, or None."""
    if value < EARLIEST_INSTANT:
        return f"must not be before {format_rfc3339(EARLIEST_INSTANT)}"
    latest = min(received_at + EVENT_FUTURE_ALLOWANCE, LATEST_INSTANT)
    if value > latest:
        return f"must not be more than a day in the future (latest accepted: {format_rfc3339(latest)})"
    return None


def floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def ceil_minute(value: datetime) -> datetime:
    floored = floor_minute(value)
    return floored if floored == value else floored + timedelta(minutes=1)
