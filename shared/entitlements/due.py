"""Entitlement usage-period resets as test-clock due work (shared/testclocks/due.py's `DueWork`
and `Scheduled`, satisfied structurally: this domain does not import the test clocks).

While a clock advances, its customers' metered states whose period ended by the step get their
reset (the same refresh the wall-clock sweep does, at the clock's time); the earliest period end
still ahead is the next instant this provider needs the clock to stop at.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from shared.entitlements.realtime import AccessRefresher


class EntitlementResets:
    name = "entitlement_resets"

    def __init__(self, refresher: AccessRefresher, workers: int = 8) -> None:
        self.refresher = refresher
        self.workers = max(1, workers)
        # The last run's view: (customers, until) -> earliest period end after `until`. The runner
        # asks `next_due(customers, t)` right after `run_due(customers, t)`: no second read.
        self._last: tuple[tuple[str, ...], datetime, datetime | None] | None = None

    def run_due(self, customer_ids: Sequence[str], until: datetime) -> int:
        # Customers are independent: their refreshes run side by side (I/O bound: DynamoDB, SNS).
        chunks = [customer_ids[i :: self.workers] for i in range(min(self.workers, len(customer_ids)))]
        if len(chunks) <= 1:
            results = [self.refresher.run_due(customer_ids, until)]
        else:
            with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
                results = list(pool.map(lambda chunk: self.refresher.run_due(chunk, until), chunks))
        aheads = [a for _, a in results if a is not None]
        self._last = (tuple(customer_ids), until, min(aheads) if aheads else None)
        return sum(n for n, _ in results)

    def next_due(self, customer_ids: Sequence[str], after: datetime) -> datetime | None:
        if self._last is not None and self._last[:2] == (tuple(customer_ids), after):
            return self._last[2]
        ahead = None
        for customer_id in customer_ids:
            for state in self.refresher.store.states(customer_id):
                if state.period_to is not None and state.period_to > after:
                    ahead = state.period_to if ahead is None else min(ahead, state.period_to)
        return ahead
