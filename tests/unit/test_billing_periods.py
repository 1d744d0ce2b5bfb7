"""Billing periods (engine-rules §2.8): a table checked by hand, not computed by the code under test.

Each case is a cadence, an anchor and the subscription start (= the anchor: an anniversary, or a
calendar subscription when the anchor is the 1st), and the 14 boundaries of its first 13 periods,
written out from a calendar. 2024 is a leap year (Feb 29), 2025-2027 are not (Feb 28). Month ends
clamp and come back: an anchor on the 31st bills on Feb 29 / Feb 28 / Apr 30, and on Mar 31 again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from shared.subscriptions.periods import (
    Period,
    calendar_anchor,
    is_boundary,
    next_boundary,
    normalize_anchor,
    period_at,
    periods,
)


def d(text: str) -> datetime:
    """`2024-02-29` (midnight UTC) or `2024-02-29T15:42:07`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


TABLE = {
    # -- P1W: 7 days, whatever the month length ------------------------------------------------------
    ("P1W", "2024-01-01"): [
        "2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29", "2024-02-05", "2024-02-12",
        "2024-02-19", "2024-02-26", "2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25", "2024-04-01",
    ],
    ("P1W", "2024-01-15"): [
        "2024-01-15", "2024-01-22", "2024-01-29", "2024-02-05", "2024-02-12", "2024-02-19", "2024-02-26",
        "2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25", "2024-04-01", "2024-04-08", "2024-04-15",
    ],
    ("P1W", "2024-01-31"): [
        "2024-01-31", "2024-02-07", "2024-02-14", "2024-02-21", "2024-02-28", "2024-03-06", "2024-03-13",
        "2024-03-20", "2024-03-27", "2024-04-03", "2024-04-10", "2024-04-17", "2024-04-24", "2024-05-01",
    ],
    # -- P1M ----------------------------------------------------------------------------------------
    ("P1M", "2024-01-01"): [
        "2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01", "2024-06-01", "2024-07-01",
        "2024-08-01", "2024-09-01", "2024-10-01", "2024-11-01", "2024-12-01", "2025-01-01", "2025-02-01",
    ],
    ("P1M", "2024-01-15"): [
        "2024-01-15", "2024-02-15", "2024-03-15", "2024-04-15", "2024-05-15", "2024-06-15", "2024-07-15",
        "2024-08-15", "2024-09-15", "2024-10-15", "2024-11-15", "2024-12-15", "2025-01-15", "2025-02-15",
    ],
    ("P1M", "2024-01-31"): [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30", "2024-07-31",
        "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31", "2025-01-31", "2025-02-28",
    ],
    # -- P3M (anchors chosen so that February is a boundary) -------------------------------------------
    ("P3M", "2023-11-01"): [
        "2023-11-01", "2024-02-01", "2024-05-01", "2024-08-01", "2024-11-01", "2025-02-01", "2025-05-01",
        "2025-08-01", "2025-11-01", "2026-02-01", "2026-05-01", "2026-08-01", "2026-11-01", "2027-02-01",
    ],
    ("P3M", "2023-11-15"): [
        "2023-11-15", "2024-02-15", "2024-05-15", "2024-08-15", "2024-11-15", "2025-02-15", "2025-05-15",
        "2025-08-15", "2025-11-15", "2026-02-15", "2026-05-15", "2026-08-15", "2026-11-15", "2027-02-15",
    ],
    ("P3M", "2023-08-31"): [
        "2023-08-31", "2023-11-30", "2024-02-29", "2024-05-31", "2024-08-31", "2024-11-30", "2025-02-28",
        "2025-05-31", "2025-08-31", "2025-11-30", "2026-02-28", "2026-05-31", "2026-08-31", "2026-11-30",
    ],
    # -- P1Y ----------------------------------------------------------------------------------------
    ("P1Y", "2024-02-01"): [
        "2024-02-01", "2025-02-01", "2026-02-01", "2027-02-01", "2028-02-01", "2029-02-01", "2030-02-01",
        "2031-02-01", "2032-02-01", "2033-02-01", "2034-02-01", "2035-02-01", "2036-02-01", "2037-02-01",
    ],
    ("P1Y", "2024-02-15"): [
        "2024-02-15", "2025-02-15", "2026-02-15", "2027-02-15", "2028-02-15", "2029-02-15", "2030-02-15",
        "2031-02-15", "2032-02-15", "2033-02-15", "2034-02-15", "2035-02-15", "2036-02-15", "2037-02-15",
    ],
    ("P1Y", "2024-01-31"): [
        "2024-01-31", "2025-01-31", "2026-01-31", "2027-01-31", "2028-01-31", "2029-01-31", "2030-01-31",
        "2031-01-31", "2032-01-31", "2033-01-31", "2034-01-31", "2035-01-31", "2036-01-31", "2037-01-31",
    ],
    # A leap-day anniversary bills on Feb 28 in common years and on Feb 29 again in leap years.
    ("P1Y", "2024-02-29"): [
        "2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29", "2029-02-28", "2030-02-28",
        "2031-02-28", "2032-02-29", "2033-02-28", "2034-02-28", "2035-02-28", "2036-02-29", "2037-02-28",
    ],
}  # fmt: skip


@pytest.mark.parametrize(("cadence", "anchor"), list(TABLE), ids=[f"{c}@{a}" for c, a in TABLE])
def test_first_13_billing_periods(cadence: str, anchor: str) -> None:
    bounds = [d(x) for x in TABLE[(cadence, anchor)]]
    expected = [Period(a, b) for a, b in pairwise(bounds)]
    assert len(expected) == 13
    assert periods(d(anchor), cadence, d(anchor), 13) == expected
    # Every instant inside a period finds that period; each boundary is one.
    for p in expected:
        assert period_at(d(anchor), cadence, p.start) == p
        assert period_at(d(anchor), cadence, p.end.replace(second=0) - (p.end - p.start) / 2) == p
        assert is_boundary(d(anchor), cadence, p.start)


def test_anniversary_keeps_its_time_of_day_through_a_clamped_month() -> None:
    got = periods(d("2024-01-31T15:42:07"), "P1M", d("2024-01-31T15:42:07"), 3)
    assert got == [
        Period(d("2024-01-31T15:42:07"), d("2024-02-29T15:42:07")),
        Period(d("2024-02-29T15:42:07"), d("2024-03-31T15:42:07")),
        Period(d("2024-03-31T15:42:07"), d("2024-04-30T15:42:07")),
    ]


def test_calendar_alignment_gives_a_partial_first_period() -> None:
    start = d("2024-01-15T10:00:00")
    anchor = calendar_anchor(start)
    assert anchor == d("2024-01-01")
    assert periods(anchor, "P1M", start, 3) == [
        Period(start, d("2024-02-01")),  # partial: Jan 15 10:00 to the next first of the month
        Period(d("2024-02-01"), d("2024-03-01")),
        Period(d("2024-03-01"), d("2024-04-01")),
    ]


@pytest.mark.parametrize(
    ("anchor", "cadence", "start", "normalised", "period_end"),
    [
        # An anchor before the start moves forward to the last recurrence at or before it...
        ("2024-01-31", "P1M", "2024-03-10", "2024-02-29", "2024-03-31"),  # ...yet the period ends on the 31st
        ("2023-06-15", "P1Y", "2024-03-01", "2023-06-15", "2024-06-15"),
        ("2024-01-01", "P1W", "2024-01-20", "2024-01-15", "2024-01-22"),
        # ...an anchor after it moves back.
        ("2024-02-10", "P1M", "2024-01-20", "2024-01-10", "2024-02-10"),
        ("2025-05-31", "P3M", "2024-12-01", "2024-11-30", "2025-02-28"),
        # On a boundary it stays.
        ("2024-01-01", "P1M", "2024-05-01", "2024-05-01", "2024-06-01"),
    ],
)
def test_anchor_normalisation(
    anchor: str, cadence: str, start: str, normalised: str, period_end: str
) -> None:
    assert normalize_anchor(d(anchor), cadence, d(start)) == d(normalised)
    assert next_boundary(d(anchor), cadence, d(start)) == d(period_end)
