"""Billing periods of a subscription (engine-rules §2.8, product.md §11.2). Pure: no I/O, no clock.

Aligned billing periods are `[anchor + k·cadence, anchor + (k+1)·cadence)`, each boundary computed from
the anchor (`shared.core.durations.step`), never by adding a step to the previous boundary: an anchor on
the 31st bills on Feb 28/29 and is back on the 31st in March (Jan 31 → Feb 29 → Mar 31, not Mar 29).

A calendar subscription is anchored on the first of a month, an anniversary one on its start; both are
just anchors. The API reports the anchor *normalised* (the nearest recurrence at or before the start),
but the periods are always computed from the anchor as given (`origin`): re-anchoring on a clamped
recurrence (Feb 29) would move every later boundary to the 29th.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.core import durations

# The cadences a plan may bill on (openmeter productcatalog `ErrPlanBillingCadenceAllowedValues`).
BILLING_CADENCES = ("P1W", "P2W", "P4W", "P1M", "P3M", "P6M", "P12M", "P1Y")


@dataclass(frozen=True)
class Period:
    """Half-open [start, end)."""

    start: datetime
    end: datetime

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def boundary(origin: datetime, cadence: str, k: int) -> datetime:
    """The k-th recurrence of the anchor (k may be negative)."""
    return durations.step(origin, cadence, k)


def index_at(origin: datetime, cadence: str, t: datetime) -> int:
    """The k of the aligned period containing t."""
    return durations.index_at(origin, cadence, t)


def period_at(origin: datetime, cadence: str, t: datetime) -> Period:
    """The aligned billing period containing t (not clipped to the subscription)."""
    k = index_at(origin, cadence, t)
    return Period(boundary(origin, cadence, k), boundary(origin, cadence, k + 1))


def normalize_anchor(origin: datetime, cadence: str, start: datetime) -> datetime:
    """The nearest recurrence of the anchor at or before `start` (the anchor as the API reports it)."""
    return period_at(origin, cadence, start).start


def next_boundary(origin: datetime, cadence: str, t: datetime) -> datetime:
    """The first period boundary strictly after t (`next_billing_cycle`)."""
    return period_at(origin, cadence, t).end


def is_boundary(origin: datetime, cadence: str, t: datetime) -> bool:
    return period_at(origin, cadence, t).start == t


def periods(origin: datetime, cadence: str, start: datetime, count: int) -> list[Period]:
    """The first `count` billing periods of a subscription starting at `start`: the first one is
    clipped to the start (a partial first period when the start is not on a boundary)."""
    k = index_at(origin, cadence, start)
    out = [Period(start, boundary(origin, cadence, k + 1))]
    while len(out) < count:
        k += 1
        out.append(Period(boundary(origin, cadence, k), boundary(origin, cadence, k + 1)))
    return out[:count]


def calendar_anchor(t: datetime) -> datetime:
    """The first of t's month at midnight UTC: a calendar-aligned anchor."""
    return t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
