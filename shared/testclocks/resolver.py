"""`now_for(customer_id)`: the one seam through which customer-facing code reads "now".

A customer created on a test clock sees the clock's frozen time, always (never wall time); every
other customer sees wall time. The binding is set when the customer is created and never changes,
so it is cached for the life of the process (bounded); the clocks' times move, so they are cached
per invocation only (`new_invocation()`, called by the api, aggregate and rate handlers), and
the advance runner pins the time it is stepping through (`pin`).
"""

from __future__ import annotations

from datetime import datetime

from shared.core.timeutil import Clock
from shared.customers.repository import CustomerRepository
from shared.testclocks.repository import TestClockRepository

MAX_CACHED_BINDINGS = 100_000


class ClockResolver:
    def __init__(
        self, clocks: TestClockRepository, customers: CustomerRepository, clock: Clock | None = None
    ) -> None:
        self.clocks = clocks
        self.customers = customers
        self.clock = clock or Clock()
        self._bindings: dict[str, str | None] = {}
        self._times: dict[str, datetime] = {}

    def new_invocation(self) -> None:
        self._times.clear()

    def pin(self, clock_id: str, frozen: datetime) -> None:
        self._times[clock_id] = frozen

    def clock_of(self, customer_id: str) -> str | None:
        if customer_id in self._bindings:
            return self._bindings[customer_id]
        customer = self.customers.get(customer_id)
        if customer is None:
            return None  # unknown (yet): not cached, an id is only ever bound at its creation
        if len(self._bindings) >= MAX_CACHED_BINDINGS:
            self._bindings.clear()
        self._bindings[customer_id] = customer.test_clock_id
        return customer.test_clock_id

    def time_of(self, clock_id: str) -> datetime | None:
        if clock_id not in self._times:
            frozen = self.clocks.frozen_time(clock_id)
            if frozen is None:
                return None
            self._times[clock_id] = frozen
        return self._times[clock_id]

    def now_for(self, customer_id: str) -> datetime:
        clock_id = self.clock_of(customer_id)
        if clock_id is not None and (frozen := self.time_of(clock_id)) is not None:
            return frozen
        # Unbound; or bound to a clock that is gone, which only happens once the customer was
        # deleted (a clock with customers can't be deleted): what remains is ending its entitlements.
        return self.clock.now()
