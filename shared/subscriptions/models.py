"""Subscription domain types (engine-rules §2.8, product.md §11).

A subscription puts one customer on one plan version over `[active_from, active_to)` (no `active_to`:
until canceled). Its phases follow the plan's: each starts where the previous one's `duration` ends,
counted from `active_from`. Status is derived at an instant, never stored. `anchor_origin` is the
billing anchor as given (periods are computed from it, see `periods.py`); `billing_anchor` is the
same anchor normalised to the last recurrence at or before the start, as the API reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

# The engine's code for a second overlapping subscription (openmeter subscription errors).
ONLY_SINGLE_SUBSCRIPTION = "only_single_subscription_allowed_per_customer_at_a_time"
ENDED = "#ended"  # `applied` once everything of an ended subscription is torn down


class Timing(StrEnum):
    IMMEDIATE = "immediate"
    NEXT_BILLING_CYCLE = "next_billing_cycle"


TimingSpec = Timing | datetime


class Status(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    CANCELED = "canceled"
    SCHEDULED = "scheduled"


class SettlementMode(StrEnum):
    CREDIT_THEN_INVOICE = "credit_then_invoice"
    CREDIT_ONLY = "credit_only"


@dataclass(frozen=True)
class PhaseSpan:
    key: str
    start: datetime


@dataclass
class Subscription:
    id: str
    customer_id: str
    plan_id: str
    plan_key: str
    plan_version: int
    currency: str
    billing_cadence: str
    anchor_origin: datetime
    billing_anchor: datetime
    active_from: datetime
    phases: tuple[PhaseSpan, ...]
    created_at: datetime
    updated_at: datetime
    active_to: datetime | None = None
    labels: dict[str, str] | None = None
    settlement_mode: SettlementMode = SettlementMode.CREDIT_THEN_INVOICE
    # What `run_due` last materialised: a phase key, ENDED, or None (nothing yet).
    applied: str | None = None
    # The entitlements this subscription manages now: feature key -> entitlement id.
    entitlements: dict[str, str] = field(default_factory=dict)
    # Set on the subscription an immediate change started: usage measured since the current usage
    # period's start (not before this instant) is kept by its first phase's entitlements.
    keep_usage_since: datetime | None = None

    def status(self, now: datetime) -> Status:
        if self.active_to is not None and self.active_to <= self.active_from:
            return Status.INACTIVE  # canceled before it started: it never runs
        if now < self.active_from:
            return Status.SCHEDULED
        if self.active_to is not None:
            return Status.INACTIVE if self.active_to <= now else Status.CANCELED
        return Status.ACTIVE

    def live_at(self, t: datetime) -> bool:
        return self.active_from <= t and (self.active_to is None or t < self.active_to)

    def phase_at(self, t: datetime) -> PhaseSpan | None:
        """The phase running at t (None before the start or from the end on)."""
        if not self.live_at(t):
            return None
        current = None
        for phase in self.phases:
            if phase.start <= t:
                current = phase
        return current

    def target_at(self, t: datetime) -> str | None:
        """What should be materialised at t: a phase key, ENDED, or None (not started)."""
        if t < self.active_from:
            return None
        phase = self.phase_at(t)
        return phase.key if phase is not None else ENDED

    def rank(self, target: str | None) -> int:
        """How far along a target is (not started < each phase in order < ended): run_due only
        moves forward, so a run for an earlier instant never undoes a later one."""
        if target is None:
            return -1
        if target == ENDED:
            return len(self.phases)
        return next((i for i, p in enumerate(self.phases) if p.key == target), -1)

    def due_at(self, until: datetime) -> bool:
        return self.rank(self.target_at(until)) > self.rank(self.applied)

    def transitions(self) -> list[datetime]:
        """The instants at which `target_at` can change: the start, each phase's start, the end."""
        times = [self.active_from, *(p.start for p in self.phases)]
        if self.active_to is not None:
            times.append(self.active_to)
        return times


@dataclass(frozen=True)
class Span:
    """One subscription on its customer's timeline: [start, end), end None = open."""

    subscription_id: str
    start: datetime
    end: datetime | None

    @property
    def empty(self) -> bool:
        return self.end is not None and self.end <= self.start

    def overlaps(self, start: datetime, end: datetime | None) -> bool:
        return (end is None or self.start < end) and (self.end is None or start < self.end)


@dataclass(frozen=True)
class ChangeResult:
    current: Subscription
    next: Subscription


@dataclass(frozen=True)
class QuantitySegment:
    """From `start` on (until the next segment or the subscription's end), `quantity` instances."""

    start: datetime
    quantity: int


@dataclass
class SubscriptionAddon:
    """An add-on on a subscription, with its quantity timeline (engine-rules §2.8 "Add-ons")."""

    id: str
    subscription_id: str
    addon_id: str
    name: str
    segments: tuple[QuantitySegment, ...]
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None

    def quantity_at(self, t: datetime) -> int:
        current = 0
        for seg in self.segments:
            if seg.start <= t:
                current = seg.quantity
        return current

    def shown_at(self, now: datetime) -> tuple[int, datetime]:
        """(quantity, when) as the contract shows it (`quantity` >= 1): the quantity in force now, else
        the next one to come, else the last one there was."""
        if self.quantity_at(now) >= 1:
            return self.quantity_at(now), now
        upcoming = [s for s in self.segments if s.start > now and s.quantity >= 1]
        if upcoming:
            return upcoming[0].quantity, upcoming[0].start
        past = [s for s in self.segments if s.quantity >= 1]
        return (past[-1].quantity, past[-1].start) if past else (1, self.segments[0].start)
