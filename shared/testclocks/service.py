"""Test clock use cases (Stripe's semantics): create a clock frozen at a time, bind customers to it
at their creation, advance it forward; the advance itself runs outside the API request.

`TestClockService.advance` only records the target (status `advancing`) and asks for a run
(`AdvanceTrigger`: an SNS message the rate function subscribes to); `ClockAdvancer.run` does the
work in the rate function, step by step (shared/testclocks/due.py), under a lease, storing each
step, and sets the clock `ready` when it reaches the target.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from aws_lambda_powertools import Logger

from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.ids import is_ulid, new_id
from shared.core.listing import Listed
from shared.core.observability import SERVICE
from shared.core.timeutil import Clock, format_rfc3339
from shared.testclocks.due import DueWork, next_step
from shared.testclocks.models import ClockStatus, TestClock
from shared.testclocks.repository import ClockChanged, TestClockRepository
from shared.testclocks.requests import AdvanceTestClockRequest, CreateTestClockRequest, ListQuery
from shared.testclocks.resolver import ClockResolver

logger = Logger(service=SERVICE, child=True)

# A runner holds a clock for this long per step; a crashed one is taken over after it.
LEASE_SECONDS = 120
# Stop stepping when less than this, or twice the longest step so far, is left of the invocation
# (every run makes at least one step); the next run continues from the stored step.
MIN_RESERVE_SECONDS = 2.0


class AdvanceTrigger(Protocol):
    def advance_requested(self, clock_id: str, at: datetime) -> None: ...


class TestClockService:
    __test__ = False

    def __init__(
        self, repo: TestClockRepository, trigger: AdvanceTrigger | None = None, clock: Clock | None = None
    ) -> None:
        self.repo = repo
        self.trigger = trigger
        self.clock = clock or Clock()

    def create(self, req: CreateTestClockRequest) -> TestClock:
        now = self.clock.now()
        created = TestClock(
            id=new_id(),
            name=req.name,
            frozen_time=req.frozen_time,
            status=ClockStatus.READY,
            created_at=now,
            updated_at=now,
        )
        self.repo.create(created)
        return created

    def list(self, query: ListQuery) -> Listed[TestClock]:
        clocks = sorted(self.repo.list_all(), key=lambda c: (c.created_at, c.id))
        return Listed.of(query.page, clocks)

    def get(self, clock_id: str) -> TestClock:
        found = self.repo.get(clock_id) if is_ulid(clock_id) else None
        if found is None:
            raise NotFound(f"Test clock [{clock_id}] not found")
        return found

    def delete(self, clock_id: str) -> None:
        found = self.get(clock_id)
        try:
            self.repo.delete(found.id)
        except ClockChanged:
            again = self.repo.get(found.id)
            if again is None:
                raise NotFound(f"Test clock [{clock_id}] not found") from None
            raise Conflict(
                f"Test clock [{clock_id}] has {again.customer_count} customer(s): delete them first",
                conflicting_entity_id=found.id,
            ) from None

    def advance(self, clock_id: str, req: AdvanceTestClockRequest) -> TestClock:
        current = self.get(clock_id)
        if current.status is ClockStatus.ADVANCING:
            raise Conflict(f"Test clock [{clock_id}] is already advancing", conflicting_entity_id=current.id)
        if req.frozen_time <= current.frozen_time:
            raise InvalidInput.field(
                "frozen_time",
                f"must be after the clock's current frozen_time {format_rfc3339(current.frozen_time)}",
            )
        try:
            advancing = self.repo.start_advance(current, req.frozen_time, self.clock.now())
        except ClockChanged:
            raise Conflict(
                f"Test clock [{clock_id}] changed concurrently; retry", conflicting_entity_id=current.id
            ) from None
        if self.trigger is not None:
            # A lost trigger only delays the run: the rate function's schedule resumes every
            # advancing clock.
            try:
                self.trigger.advance_requested(advancing.id, self.clock.now())
            except Exception:
                logger.exception("advance trigger failed; the scheduled run will pick it up")
        return advancing

    def advancing_ids(self) -> builtins.list[str]:
        return [c.id for c in self.repo.list_all() if c.status is ClockStatus.ADVANCING]


class ClockAdvancer:
    """Runs an advance (the rate function): steps through the due instants, in order, across
    providers, storing progress; idempotent and resumable (shared/testclocks/due.py)."""

    def __init__(
        self,
        repo: TestClockRepository,
        resolver: ClockResolver,
        providers: Sequence[DueWork],
        clock: Clock | None = None,
    ) -> None:
        self.repo = repo
        self.resolver = resolver
        self.providers = list(providers)
        self.clock = clock or Clock()

    def register(self, provider: DueWork) -> None:
        self.providers.append(provider)

    def run(self, clock_id: str, time_left: Callable[[], float] | None = None) -> bool:
        """Advance as far as the time allows. True when the clock is ready (or not advancing)."""
        token = str(uuid.uuid4())
        try:
            clock = self.repo.take_lease(clock_id, token, LEASE_SECONDS)
        except ClockChanged:
            current = self.repo.get(clock_id)
            # Not advancing (done, deleted): nothing to do. Advancing: another runner holds it.
            return current is None or current.status is not ClockStatus.ADVANCING
        target = clock.target_frozen_time
        assert target is not None
        customers = self.repo.customer_ids(clock_id)
        t = clock.frozen_time
        done: dict[str, int] = {}
        longest = 0.0
        while True:
            started = time.monotonic()
            self.resolver.pin(clock_id, t)
            for provider in self.providers:
                done[provider.name] = done.get(provider.name, 0) + provider.run_due(customers, t)
            if t >= target:
                break
            longest = max(longest, time.monotonic() - started)
            if time_left is not None and time_left() < max(MIN_RESERVE_SECONDS, 2 * longest):
                self.repo.release(clock_id, token)
                logger.info("advance paused", extra={"test_clock_id": clock_id, "at": str(t), **done})
                return False
            t = next_step(self.providers, customers, t, target)
            self.repo.move_to(clock_id, token, t, self.clock.now(), LEASE_SECONDS)
        self.repo.finish(clock_id, token, self.clock.now())
        logger.info("advance done", extra={"test_clock_id": clock_id, "customers": len(customers), **done})
        return True
