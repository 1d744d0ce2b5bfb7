"""One RFC 3339 formatter and parser over the contract's whole range (years 0001-9999, any offset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.timeutil import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    event_time_problem,
    format_rfc3339,
    instant_problem,
    parse_rfc3339,
)

# Offsets RFC 3339 can write: whole minutes, strictly within a day.
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
# Every instant Python can hold in UTC, seen from any offset that keeps its local time in range too.
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30, 23, 59, 59, 999999), timezones=st.just(UTC)
)


@given(instants, offsets)
def test_parse_of_format_is_the_same_instant(instant: datetime, offset: timezone) -> None:
    dt = instant.astimezone(offset)
    assert parse_rfc3339(format_rfc3339(dt)) == dt


@given(instants)
def test_format_of_parse_is_the_same_text_with_a_four_digit_year(instant: datetime) -> None:
    text = format_rfc3339(instant)
    assert text[4] == "-" and text.endswith("Z")
    assert format_rfc3339(parse_rfc3339(text)) == text


@given(instants, offsets, st.integers(min_value=0, max_value=999_999_999))
def test_written_with_an_offset_and_nanoseconds(instant: datetime, offset: timezone, nanos: int) -> None:
    local = instant.replace(microsecond=0).astimezone(offset)
    minutes = int(offset.utcoffset(None).total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local:%H:%M:%S}.{nanos:09d}"
        f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    expected = instant.replace(microsecond=nanos // 1000)
    assert parse_rfc3339(text) == expected
    assert parse_rfc3339(format_rfc3339(parse_rfc3339(text))) == expected


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(2026, 3, 1, 10, 0, 0, 120000, tzinfo=UTC), "2026-03-01T10:00:00.120Z"),
        (datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), "2026-03-01T10:00:00.123456Z"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "9999-12-31T23:59:59Z"),
    ],
)
def test_format_pads_years_and_keeps_microseconds(dt: datetime, text: str) -> None:
    assert format_rfc3339(dt) == text
    assert parse_rfc3339(text) == dt


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "999-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00",
    ],
)
def test_parse_refuses_with_value_error_only(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339(text)


def test_format_refuses_an_instant_outside_the_utc_range() -> None:
    with pytest.raises(ValueError):
        format_rfc3339(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))


def test_engine_range() -> None:
    assert instant_problem(EARLIEST_INSTANT) is None
    assert instant_problem(LATEST_INSTANT) is None
    assert "1970" in (instant_problem(EARLIEST_INSTANT - timedelta(microseconds=1)) or "")
    assert instant_problem(LATEST_INSTANT + timedelta(microseconds=1)) is not None


def test_event_time_window_is_relative_to_receipt() -> None:
    received = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert event_time_problem(received + timedelta(days=1), received) is None
    assert "future" in (event_time_problem(received + timedelta(days=1, seconds=1), received) or "")
    assert event_time_problem(datetime(1970, 1, 1, tzinfo=UTC), received) is None
    assert event_time_problem(datetime(1969, 12, 31, 23, 59, tzinfo=UTC), received) is not None
