"""Advancing a test clock: due instants run in time order across providers, providers in their
registration order at one instant, progress stored before each step, resumable after a crash or a
pause, and providers without `next_due` still run at every step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shared.testclocks.due import next_step
from shared.testclocks.models import ClockStatus, TestClock
from shared.testclocks.repository import ClockChanged
from shared.testclocks.service import ClockAdvancer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


class FakeRepo:
    """The clock item as the advancer sees it (lease, progress, finish)."""

    def __init__(self, target: datetime) -> None:
        self.clock = TestClock("c", None, T0, ClockStatus.ADVANCING, T0, T0, target_frozen_time=target)
        self.lease: str | None = None
        self.moves: list[datetime] = []

    def take_lease(self, clock_id: str, token: str, seconds: int) -> TestClock:
        if self.clock.status is not ClockStatus.ADVANCING or self.lease not in (None, token):
            raise ClockChanged(clock_id)
        self.lease = token
        return self.clock

    def get(self, clock_id: str) -> TestClock:
        return self.clock

    def customer_ids(self, clock_id: str) -> list[str]:
        return ["a", "b"]

    def move_to(self, clock_id: str, token: str, frozen: datetime, now: datetime, seconds: int) -> None:
        assert token == self.lease
        self.clock.frozen_time = frozen
        self.moves.append(frozen)

    def release(self, clock_id: str, token: str) -> None:
        self.lease = None

    def finish(self, clock_id: str, token: str, now: datetime) -> TestClock:
        assert token == self.lease
        self.clock.status, self.clock.target_frozen_time, self.lease = ClockStatus.READY, None, None
        return self.clock


class FakeResolver:
    def __init__(self) -> None:
        self.pinned: list[datetime] = []

    def pin(self, clock_id: str, frozen: datetime) -> None:
        self.pinned.append(frozen)


class Provider:
    """Work due at fixed instants; records (name, instant of the work, the step that ran it)."""

    def __init__(self, name: str, due: list[datetime], log: list[tuple[str, datetime, datetime]]) -> None:
        self.name, self.pending, self.log = name, sorted(due), log
        self.crash_at: datetime | None = None

    def run_due(self, customer_ids: Sequence[str], until: datetime) -> int:
        if self.crash_at == until:
            self.crash_at = None
            raise RuntimeError("crash")
        ran = [d for d in self.pending if d <= until]
        self.pending = [d for d in self.pending if d > until]
        self.log += [(self.name, d, until) for d in ran]
        return len(ran)

    def next_due(self, customer_ids: Sequence[str], after: datetime) -> datetime | None:
        return next((d for d in self.pending if d > after), None)


class Unscheduled:
    """A provider without `next_due` (as SubscriptionService.run_due alone)."""

    name = "unscheduled"

    def __init__(self, log: list[tuple[str, datetime, datetime]]) -> None:
        self.log = log

    def run_due(self, customer_ids: Sequence[str], until: datetime) -> int:
        self.log.append((self.name, until, until))
        return 0


def advancer(repo: FakeRepo, *providers: object) -> ClockAdvancer:
    return ClockAdvancer(repo, FakeResolver(), list(providers))  # type: ignore[arg-type]


def test_due_instants_run_in_time_order_across_providers() -> None:
    log: list[tuple[str, datetime, datetime]] = []
    subs = Provider("subscriptions", [day(14), day(45)], log)
    resets = Provider("entitlement_resets", [day(30), day(60)], log)
    repo = FakeRepo(day(50))
    assert advancer(repo, subs, resets).run("c") is True
    # Each piece of work ran at its own instant (the step equals its due time), in time order.
    assert log == [
        ("subscriptions", day(14), day(14)),
        ("entitlement_resets", day(30), day(30)),
        ("subscriptions", day(45), day(45)),
    ]
    assert repo.moves == [day(14), day(30), day(45), day(50)]
    assert repo.clock.status is ClockStatus.READY and repo.clock.frozen_time == day(50)
    assert resets.pending == [day(60)]  # beyond the target: not run


def test_same_instant_runs_in_registration_order() -> None:
    log: list[tuple[str, datetime, datetime]] = []
    first = Provider("subscriptions", [day(30)], log)
    second = Provider("entitlement_resets", [day(30)], log)
    advancer(FakeRepo(day(31)), first, second).run("c")
    assert [name for name, _, _ in log] == ["subscriptions", "entitlement_resets"]


def test_a_provider_without_next_due_runs_at_every_step() -> None:
    log: list[tuple[str, datetime, datetime]] = []
    resets = Provider("entitlement_resets", [day(10), day(20)], log)
    advancer(FakeRepo(day(25)), Unscheduled(log), resets).run("c")
    assert [(n, u) for n, _, u in log if n == "unscheduled"] == [
        ("unscheduled", t) for t in (T0, day(10), day(20), day(25))
    ]


def test_a_crashed_step_is_run_again_by_the_next_runner() -> None:
    log: list[tuple[str, datetime, datetime]] = []
    resets = Provider("entitlement_resets", [day(10), day(20)], log)
    resets.crash_at = day(20)
    repo = FakeRepo(day(25))
    with pytest.raises(RuntimeError):
        advancer(repo, resets).run("c")
    # The step was stored before its work: the clock reads day 20, still advancing.
    assert repo.clock.frozen_time == day(20) and repo.clock.status is ClockStatus.ADVANCING
    repo.lease = None  # (the crashed runner's lease expired)
    assert advancer(repo, resets).run("c") is True
    assert log == [("entitlement_resets", day(10), day(10)), ("entitlement_resets", day(20), day(20))]
    assert repo.clock.frozen_time == day(25)


def test_out_of_time_pauses_after_a_step_and_the_next_run_continues() -> None:
    log: list[tuple[str, datetime, datetime]] = []
    resets = Provider("entitlement_resets", [day(10), day(20)], log)
    repo = FakeRepo(day(25))
    assert advancer(repo, resets).run("c", time_left=lambda: 1.0) is False
    assert repo.clock.frozen_time == T0 and repo.lease is None  # released: the next run starts at once
    assert advancer(repo, resets).run("c") is True
    assert [d for _, d, _ in log] == [day(10), day(20)]


def test_a_clock_held_by_another_runner_is_left_alone() -> None:
    repo = FakeRepo(day(5))
    repo.lease = "someone else"
    assert advancer(repo).run("c") is False
    repo.clock.status = ClockStatus.READY
    assert advancer(repo).run("c") is True  # nothing to do


def test_next_step_is_capped_at_the_target_and_strictly_after() -> None:
    log: list[tuple[str, datetime, datetime]] = []
    p = Provider("p", [day(1), day(3)], log)
    assert next_step([p], [], day(1), day(2)) == day(2)
    assert next_step([p], [], day(0), day(5)) == day(1)
    assert next_step([Unscheduled(log)], [], day(0), day(5)) == day(5)
