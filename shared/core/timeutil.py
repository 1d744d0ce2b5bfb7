"""Time helpers: everything is timezone-aware UTC inside; RFC 3339 on the wire."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# RFC 3339 date-time: date, 'T' (or space), time, optional fraction, mandatory offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


class Clock:
    """Injectable clock; tests freeze it."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def parse_rfc3339(value: object) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; raise ValueError otherwise."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with a time zone offset")
    text = value.replace("z", "Z").replace("t", "T")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # Python keeps microseconds; drop finer digits
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    return datetime.fromisoformat(text).astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """UTC, 'Z' suffix, milliseconds only when present."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_optional(value: datetime | None) -> str | None:
    return format_rfc3339(value) if value is not None else None


def parse_optional(value: object) -> datetime | None:
    """None for a missing or empty value, else `parse_rfc3339`."""
    return parse_rfc3339(value) if value else None


def floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def ceil_minute(value: datetime) -> datetime:
    floored = floor_minute(value)
    return floored if floored == value else floored + timedelta(minutes=1)
