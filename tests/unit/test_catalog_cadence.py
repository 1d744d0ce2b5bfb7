"""Cadence alignment (engine-rules §2.6/§2.8) and the derived plan status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.catalog.cadence import Cadence, aligned
from shared.catalog.models import Status, status_at


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("P1M", "P1M", True),
        ("P1Y", "P12M", True),
        ("P1M", "P3M", True),
        ("P1M", "P1Y", True),
        ("P2M", "P3M", False),
        ("P1D", "P1M", True),  # every month is whole days: daily lines under a monthly plan
        ("PT1H", "P1M", True),
        ("P1W", "P1M", False),  # a 30-day month is not whole weeks
        ("P2W", "P1M", False),
        ("P1W", "P2W", True),
        ("P1W", "P4W", True),
        ("P7D", "P1W", True),
        ("P3D", "P1W", False),
        ("P1D", "P1Y", True),
        ("P1M1D", "P1M", False),
    ],
)
def test_alignment(a: str, b: str, expected: bool) -> None:
    assert aligned(a, b) is expected
    assert aligned(b, a) is expected


def test_at_least_an_hour() -> None:
    assert Cadence.parse("PT1H").at_least_an_hour()
    assert Cadence.parse("P1M").at_least_an_hour()
    assert not Cadence.parse("PT59M").at_least_an_hour()


def test_status_is_derived_from_the_effective_period() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert status_at(None, None, now) is Status.DRAFT
    assert status_at(now + hour, None, now) is Status.SCHEDULED
    assert status_at(now, None, now) is Status.ACTIVE
    assert status_at(now - hour, now + hour, now) is Status.ACTIVE
    assert status_at(now - hour, now, now) is Status.ARCHIVED  # effective_to is exclusive
