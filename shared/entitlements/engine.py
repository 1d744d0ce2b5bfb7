"""The balance engine of metered entitlements: usage periods, grants and their burn-down.

Pure: no I/O. Usage comes from `usage_fn(a, b)`, the meter's aggregate over [a, b). The rules
are engine-rules §2.4-2.5 (OpenMeter's credit engine):

- Periods. The first usage period starts at `measure_usage_from`; later ones at
  `anchor + k·interval`. A manual reset starts a new period at its time and, unless it retains
  the anchor, makes itself the anchor.
- Phases. Inside a period, time splits at every grant `effective_at`, `expires_at`, `voided_at`
  and recurrence instant. At a phase start a grant that is not active has balance 0, one that
  becomes effective (or recurs) there has its full amount.
- Burning. A phase's usage plus the overage carried so far burns the active grants in order
  (priority, then soonest expiry with no expiry last, then creation, then id); what no grant
  covers is the new overage, carried within the period, so a grant starting later absorbs it.
- Resets. Each grant's balance becomes `min(max_rollover, max(min_rollover, balance))`; with
  preserve-overage the carried overage then burns the rolled-over balances (the rest opens the
  new period as overage), otherwise it is forgiven. Usage restarts at 0.
- Additive meters (sum, count, unique_count) burn usage as above. Phase usage is the difference of
  cumulative usage since the period start, U(p, b) - U(p, a), so a unique_count is never the sum of
  its phases' distinct counts. Gauge meters (latest, max, avg) treat grants as limits: the value
  over the period so far (latest value, peak, average) is burnt from the full amounts of the
  grants active at the time asked about; rollover, recurrence and overage carrying don't apply.

Everything is minute-granular: callers truncate instants. Amounts are Decimal.

Snapshots. `Snapshot` is the state at an instant before anything that happens at that instant
(a reset, a grant starting) is applied; replaying from it gives the same result as replaying from
the start, as long as nothing before it changed. Its `fingerprint` covers every input that shapes
the past, so a snapshot made stale by a new grant, a void or a reset is ignored automatically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from shared.core import durations

ZERO = Decimal(0)
UsageFn = Callable[[datetime, datetime], Decimal]


class UsageKind(StrEnum):
    ADDITIVE = "additive"  # sum, count, unique_count: grants are budgets that burn down
    GAUGE = "gauge"  # latest, max, avg: grants are limits the value is compared against


@dataclass(frozen=True)
class Recurrence:
    interval: str
    anchor: datetime


@dataclass(frozen=True)
class Grant:
    id: str
    amount: Decimal
    priority: int
    effective_at: datetime
    created_at: datetime
    expires_at: datetime | None = None
    voided_at: datetime | None = None
    min_rollover: Decimal = ZERO
    max_rollover: Decimal | None = None  # None: the grant's amount (v2 default)
    recurrence: Recurrence | None = None

    @property
    def end(self) -> datetime | None:
        ends = [t for t in (self.expires_at, self.voided_at) if t is not None]
        return min(ends) if ends else None

    def active_at(self, t: datetime) -> bool:
        end = self.end
        return self.effective_at <= t and (end is None or t < end)

    def rollover(self, balance: Decimal) -> Decimal:
        top = self.amount if self.max_rollover is None else self.max_rollover
        return min(top, max(self.min_rollover, balance))

    def order(self) -> tuple[int, int, datetime, datetime, str]:
        expiry = self.expires_at
        return (self.priority, expiry is None, expiry or self.created_at, self.created_at, self.id)


@dataclass(frozen=True)
class ManualReset:
    at: datetime
    preserve_overage: bool | None = None  # None: the entitlement's default
    retain_anchor: bool = False


@dataclass(frozen=True)
class Terms:
    kind: UsageKind
    interval: str  # ISO-8601 usage period
    anchor: datetime
    measure_usage_from: datetime
    preserve_overage_at_reset: bool = False
    is_soft_limit: bool = False
    resets: tuple[ManualReset, ...] = ()


@dataclass
class Snapshot:
    at: datetime
    period_start: datetime
    grant_balances: dict[str, Decimal]
    overage: Decimal
    usage: Decimal
    grant_usage: Decimal = ZERO  # burnt from grants in this period (for total available)
    fingerprint: str = ""

    def copy(self) -> Snapshot:
        return replace(self, grant_balances=dict(self.grant_balances))


@dataclass(frozen=True)
class Value:
    has_access: bool
    balance: Decimal
    usage: Decimal
    overage: Decimal
    total_available_grant_amount: Decimal
    grant_balances: dict[str, Decimal]
    current_period: tuple[datetime, datetime]
    last_reset: datetime | None


@dataclass(frozen=True)
class Segment:
    """One burn-down segment: [start, end) without a grant change, recurrence or reset inside."""

    start: datetime
    end: datetime
    usage: Decimal
    overage: Decimal
    balance_at_start: Decimal
    grant_balances_at_start: dict[str, Decimal]
    balance_at_end: Decimal
    grant_balances_at_end: dict[str, Decimal]
    grant_usages: dict[str, Decimal] = field(default_factory=dict)


# -- periods ---------------------------------------------------------------------------------------
_TICK = timedelta(microseconds=1)


def _boundaries(terms: Terms, start: datetime, end: datetime) -> list[tuple[datetime, ManualReset | None]]:
    """Period starts in (start, end]: automatic ones (None) and manual resets, in order."""
    out: list[tuple[datetime, ManualReset | None]] = []
    anchor, cursor = terms.anchor, terms.measure_usage_from
    manual = sorted((r for r in terms.resets if r.at > terms.measure_usage_from), key=lambda r: r.at)
    for reset in [*manual, None]:
        # Automatic starts after the previous period start, before the next manual reset (a reset
        # that falls on an automatic boundary counts once, as the reset).
        lo = max(cursor, start) + _TICK
        hi = min(reset.at if reset is not None else end + _TICK, end + _TICK)
        if lo < hi:
            out += [(at, None) for at in durations.instants(anchor, terms.interval, lo, hi)]
        if reset is None or reset.at > end:
            break
        if reset.at > start:
            out.append((reset.at, reset))
        cursor = reset.at
        if not reset.retain_anchor:
            anchor = reset.at
    return out


def period_at(terms: Terms, t: datetime) -> tuple[datetime, datetime]:
    """The usage period [from, to) that contains t (t >= measure_usage_from)."""
    anchor, start = terms.anchor, terms.measure_usage_from
    upcoming: datetime | None = None
    for reset in sorted((r for r in terms.resets if r.at > terms.measure_usage_from), key=lambda r: r.at):
        if reset.at > t:
            upcoming = reset.at
            break
        start = reset.at
        if not reset.retain_anchor:
            anchor = reset.at
    k = durations.index_at(anchor, terms.interval, t)
    start = max(start, durations.step(anchor, terms.interval, k))
    nxt = durations.step(anchor, terms.interval, k + 1)
    return start, min(nxt, upcoming) if upcoming is not None else nxt


def _preserve(terms: Terms, reset: ManualReset | None) -> bool:
    if reset is not None and reset.preserve_overage is not None:
        return reset.preserve_overage
    return terms.preserve_overage_at_reset


# -- grants ----------------------------------------------------------------------------------------
def _grant_breakpoints(grants: Iterable[Grant], start: datetime, end: datetime) -> set[datetime]:
    points: set[datetime] = set()
    for g in grants:
        for t in (g.effective_at, g.expires_at, g.voided_at):
            if t is not None and start < t < end:
                points.add(t)
        if g.recurrence is not None:
            lo = max(start + timedelta(microseconds=1), g.effective_at + timedelta(microseconds=1))
            hi = min(end, g.end or end)
            if lo < hi:
                points.update(durations.instants(g.recurrence.anchor, g.recurrence.interval, lo, hi))
    return points


def _recurs_at(g: Grant, t: datetime) -> bool:
    if g.recurrence is None or t <= g.effective_at:
        return False
    k = durations.index_at(g.recurrence.anchor, g.recurrence.interval, t)
    return durations.step(g.recurrence.anchor, g.recurrence.interval, k) == t


def fingerprint(terms: Terms, grants: Iterable[Grant], at: datetime) -> str:
    """A digest of every input that shapes the state at `at`."""
    parts = [
        terms.kind.value,
        terms.interval,
        terms.anchor.isoformat(),
        terms.measure_usage_from.isoformat(),
        str(terms.preserve_overage_at_reset),
    ]
    parts += [
        f"R{r.at.isoformat()}/{r.preserve_overage}/{r.retain_anchor}" for r in terms.resets if r.at < at
    ]
    for g in sorted(grants, key=lambda g: g.id):
        if g.effective_at >= at:
            continue  # starts later: it cannot have shaped the past
        voided = g.voided_at.isoformat() if g.voided_at is not None and g.voided_at < at else "-"
        rec = g.recurrence
        parts.append(
            f"G{g.id}/{g.amount}/{g.priority}/{g.effective_at.isoformat()}/{g.created_at.isoformat()}/"
            f"{g.expires_at.isoformat() if g.expires_at else '-'}/{voided}/{g.min_rollover}/"
            f"{g.max_rollover}/{rec.interval + '@' + rec.anchor.isoformat() if rec else '-'}"
        )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


# -- the burn ----------------------------------------------------------------------------------------
def _burn(
    order: list[Grant], balances: dict[str, Decimal], amount: Decimal
) -> tuple[Decimal, dict[str, Decimal]]:
    """Burn `amount` from the grants in order; returns (what no grant covered, burnt per grant)."""
    burnt: dict[str, Decimal] = {}
    for g in order:
        if amount <= 0:
            break
        have = balances.get(g.id, ZERO)
        if have <= 0:
            continue
        take = min(have, amount)
        balances[g.id] = have - take
        burnt[g.id] = take
        amount -= take
    return amount, burnt


class _Replay:
    """Walks the timeline from a state to an instant, collecting segments when asked."""

    def __init__(self, terms: Terms, grants: list[Grant], usage_fn: UsageFn) -> None:
        self.terms = terms
        self.grants = grants
        self.usage_fn = usage_fn

    def initial(self) -> Snapshot:
        return Snapshot(
            at=self.terms.measure_usage_from,
            period_start=self.terms.measure_usage_from,
            grant_balances={},
            overage=ZERO,
            usage=ZERO,
        )

    def start_state(self, snapshot: Snapshot | None, until: datetime) -> Snapshot:
        if (
            snapshot is not None
            and self.terms.measure_usage_from <= snapshot.at <= until
            and snapshot.fingerprint == fingerprint(self.terms, self.grants, snapshot.at)
        ):
            return snapshot.copy()
        return self.initial()

    def cumulative(self, period_start: datetime, t: datetime) -> Decimal:
        return self.usage_fn(period_start, t) if t > period_start else ZERO

    def _phase_start(self, state: Snapshot, t: datetime, reset: ManualReset | None, boundary: bool) -> None:
        """Apply what happens at t: a reset, then grants ending, starting or recurring."""
        if not boundary:
            self._activate(state, t)
            return
        for g in self.grants:
            if g.id in state.grant_balances and g.active_at(t):
                state.grant_balances[g.id] = g.rollover(state.grant_balances[g.id])
        carried = state.overage
        state.period_start, state.usage, state.overage, state.grant_usage = t, ZERO, ZERO, ZERO
        # Grants starting or recurring at the reset belong to the new period (full amount); a
        # preserved overage then burns what the period opens with, the rest stays overage.
        self._activate(state, t)
        if carried > 0 and _preserve(self.terms, reset):
            state.overage, burnt = _burn(self._order(t), state.grant_balances, carried)
            state.grant_usage = sum(burnt.values(), ZERO)

    def _activate(self, state: Snapshot, t: datetime) -> None:
        for g in self.grants:
            if not g.active_at(t):
                state.grant_balances.pop(g.id, None)
            elif g.id not in state.grant_balances or g.effective_at == t or _recurs_at(g, t):
                # (not yet in the state: active since before measure_usage_from)
                state.grant_balances[g.id] = g.amount

    def _order(self, t: datetime) -> list[Grant]:
        return sorted((g for g in self.grants if g.active_at(t)), key=Grant.order)

    def run(
        self,
        state: Snapshot,
        until: datetime,
        segments: list[Segment] | None = None,
        extra_points: Iterable[datetime] = (),
        marks: dict[datetime, Snapshot] | None = None,
    ) -> Snapshot:
        """Advance `state` to `until`; what happens at `until` itself is left for the next run."""
        t = state.at
        boundaries = dict(_boundaries(self.terms, t - _TICK, until))
        inner = {*boundaries, *_grant_breakpoints(self.grants, t, until), *extra_points}
        for end in [*sorted(p for p in inner if t < p < until), until]:
            if t >= until:
                break
            boundary = t in boundaries and t > state.period_start
            before = dict(state.grant_balances)
            self._phase_start(state, t, boundaries.get(t), boundary)
            if segments is not None and boundary and self.terms.kind == UsageKind.ADDITIVE:
                segments.append(_rollover_segment(t, before, state.grant_balances))
            order = self._order(t)
            gauge = self.terms.kind == UsageKind.GAUGE
            if gauge:
                # Limits: every phase starts each active grant at its full amount (engine-rules §2.5 #3).
                state.grant_balances = {g.id: g.amount for g in order}
                state.overage = ZERO
            if marks is not None:
                marks[t] = state.copy()
            opening = {g.id: state.grant_balances.get(g.id, ZERO) for g in order}
            carried = state.overage
            burnt: dict[str, Decimal] = {}
            if gauge:
                # ... and the period's value so far (latest, peak, average) is held against them.
                usage = self.cumulative(state.period_start, end)
                state.usage = usage
                state.overage, burnt = _burn(order, state.grant_balances, usage)
                state.grant_usage = usage - state.overage
            else:
                usage = self.cumulative(state.period_start, end) - self.cumulative(state.period_start, t)
                state.usage += usage
                state.overage, burnt = _burn(order, state.grant_balances, usage + carried)
                state.grant_usage += sum(burnt.values(), ZERO)
            if segments is not None:
                closing = {g: state.grant_balances.get(g, ZERO) for g in opening}
                segments.append(
                    Segment(
                        start=t,
                        end=end,
                        usage=usage,
                        overage=max(ZERO, state.overage - carried),
                        balance_at_start=sum(opening.values(), ZERO),
                        grant_balances_at_start=opening,
                        balance_at_end=sum(closing.values(), ZERO),
                        grant_balances_at_end=closing,
                        grant_usages={k: v for k, v in burnt.items() if v},
                    )
                )
            t = state.at = end
        state.at = until
        return state


def _rollover_segment(t: datetime, before: dict[str, Decimal], after: dict[str, Decimal]) -> Segment:
    """The zero-length segment at a reset: balances before and after rollover (engine-rules §2.5 #7)."""
    ids = [*before, *(g for g in after if g not in before)]
    start = {g: before.get(g, ZERO) for g in ids}
    end = {g: after.get(g, ZERO) for g in ids}
    return Segment(t, t, ZERO, ZERO, sum(start.values(), ZERO), start, sum(end.values(), ZERO), end)


def snapshot_at(
    terms: Terms, grants: Iterable[Grant], usage_fn: UsageFn, at: datetime, snapshot: Snapshot | None = None
) -> Snapshot:
    """The state at `at`, before whatever happens at `at`; reusable as a replay start."""
    grants = list(grants)
    replay = _Replay(terms, grants, usage_fn)
    at = max(at, terms.measure_usage_from)
    state = replay.run(replay.start_state(snapshot, at), at)
    state.fingerprint = fingerprint(terms, grants, state.at)
    return state


def value_at(
    terms: Terms, grants: Iterable[Grant], usage_fn: UsageFn, at: datetime, snapshot: Snapshot | None = None
) -> Value:
    """The value for usage before `at`: what a read in the minute before `at` sees (callers pass
    the end of the current minute). Grants starting at `at` don't count yet; a reset at `at`
    hasn't happened."""
    grants = list(grants)
    if at <= terms.measure_usage_from:  # nothing measured yet
        first = sorted((g for g in grants if g.active_at(terms.measure_usage_from)), key=Grant.order)
        full = {g.id: g.amount for g in first}
        total = sum(full.values(), ZERO)
        period = period_at(terms, terms.measure_usage_from)
        return Value(terms.is_soft_limit or total > 0, total, ZERO, ZERO, total, full, period, None)
    last = at - _TICK
    period = period_at(terms, last)
    last_reset = period[0] if period[0] > terms.measure_usage_from else None
    live = sorted((g for g in grants if g.active_at(last)), key=Grant.order)
    replay = _Replay(terms, grants, usage_fn)
    if terms.kind == UsageKind.GAUGE:
        # Limits: the period's value so far against the full amounts of the grants active now.
        balances = {g.id: g.amount for g in live}
        value = replay.cumulative(period[0], at)
        overage, _ = _burn(live, balances, value)
        balance = sum(balances.values(), ZERO)
        total = sum((g.amount for g in live), ZERO)
        return Value(
            terms.is_soft_limit or balance > 0, balance, value, overage, total, balances, period, last_reset
        )
    state = replay.run(replay.start_state(snapshot, at), at)
    balances = {g.id: state.grant_balances.get(g.id, ZERO) for g in live}
    balance = sum(balances.values(), ZERO)
    return Value(
        has_access=terms.is_soft_limit or balance > 0,
        balance=balance,
        usage=state.usage,
        overage=state.overage,
        total_available_grant_amount=state.grant_usage + balance,
        grant_balances=balances,
        current_period=period,
        last_reset=last_reset,
    )


def burndown(
    terms: Terms,
    grants: Iterable[Grant],
    usage_fn: UsageFn,
    start: datetime,
    end: datetime,
) -> list[Segment]:
    """The burn-down segments over [start, end): they break at grant changes, recurrences and resets,
    and each reset after `start` adds a zero-length rollover segment (additive meters)."""
    grants = list(grants)
    replay = _Replay(terms, grants, usage_fn)
    first = max(start, terms.measure_usage_from)
    state = replay.run(replay.initial(), first)
    segments: list[Segment] = []
    replay.run(state, end, segments=segments)
    # A reset exactly at `start` opens the range; its rollover happened before it.
    return [s for s in segments if not (s.start == s.end == first)]


def balances_at(
    terms: Terms,
    grants: Iterable[Grant],
    usage_fn: UsageFn,
    instants: list[datetime],
    end: datetime,
) -> dict[datetime, Snapshot]:
    """The state at each instant (after what happens there is applied), walking once to `end`."""
    grants = list(grants)
    replay = _Replay(terms, grants, usage_fn)
    first = min(instants) if instants else end
    state = replay.run(replay.initial(), max(first, terms.measure_usage_from))
    marks: dict[datetime, Snapshot] = {}
    replay.run(state, end, extra_points=instants, marks=marks)
    return marks
