"""ISO-8601 cadences as the catalog compares them (engine-rules §2.6, §2.8).

A rate card's cadence must *align* with its plan's: equal, or the longer one an exact multiple of the
shorter. Calendar months vary in length, so a fixed-length step (days, hours, weeks) divides a
month-based one only if it does so for every month and year length: P1D divides P1M (28..31 days are
whole days), P1W does not (30 days are not whole weeks). We check the longer period's length from the
first of each month of a common and a leap year: that covers every month and year length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from shared.core.durations import parse_duration

# Plan cadences the engine accepts (openmeter productcatalog `ErrPlanBillingCadenceAllowedValues`).
PLAN_CADENCES = ("P1W", "P2W", "P4W", "P1M", "P3M", "P6M", "P12M", "P1Y")
_ANCHORS = [datetime(year, month, 1, tzinfo=UTC) for year in (2023, 2024) for month in range(1, 13)]
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Cadence:
    """A duration split into its calendar part (months) and its fixed part (seconds)."""

    months: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Cadence:
        """ValueError unless `text` is an ISO-8601 duration of whole units."""
        d = parse_duration(text)
        seconds = ((d.days * 24 + d.hours) * 60 + d.minutes) * 60 + d.seconds
        return cls(d.years * 12 + d.months, seconds)

    @property
    def delta(self) -> relativedelta:
        return relativedelta(months=self.months, seconds=self.seconds)

    def length_from(self, start: datetime) -> timedelta:
        return (start + self.delta) - start

    @property
    def positive(self) -> bool:
        return self.months > 0 or self.seconds > 0

    def at_least_an_hour(self) -> bool:
        return self.months > 0 or self.seconds >= 3600

    def approx(self) -> timedelta:
        return self.length_from(_ANCHORS[0])


def equivalent(a: str, b: str) -> bool:
    """Same length everywhere (`P1Y` and `P12M`, `P1W` and `P7D`)."""
    return Cadence.parse(a) == Cadence.parse(b)


def aligned(a: str, b: str) -> bool:
    """True when one cadence is a whole multiple of the other for every month and year length."""
    ca, cb = Cadence.parse(a), Cadence.parse(b)
    if ca == cb:
        return True
    if not (ca.positive and cb.positive):
        return False
    short, long = sorted((ca, cb), key=lambda c: c.approx())
    if short.months:
        # A calendar step divides only another pure-calendar step.
        return short.seconds == 0 and long.seconds == 0 and long.months % short.months == 0
    step = short.seconds
    return all(long.length_from(at).total_seconds() % step == 0 for at in _ANCHORS)
