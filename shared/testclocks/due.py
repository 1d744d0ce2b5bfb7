"""What falls due on a test clock, and the order an advance runs it in.

Providers implement `DueWork`: `run_due(customer_ids, until)` does, idempotently, every piece of
that provider's work for those customers that is due at or before `until` (their clock reads
`until` while it runs), and returns how much it did. A provider that can also say when its next
piece falls due implements `next_due(customer_ids, after)` (`Scheduled`).

Ordering. An advance from `t0` to `target` steps through due instants:

    t = t0
    loop:
        run every provider, in registration order, with until = t
        if t >= target: done
        t = min(target, every Scheduled provider's next_due(customers, t))   # strictly after t
        store t as the clock's frozen time (progress), then loop

So work falling due at different instants runs in time order across providers (a reset at day 30
runs before a phase change at day 45 and after one at day 14, whichever provider owns it), and
work due at the same instant runs in registration order: subscriptions (phase changes create and
end entitlements), then entitlement resets (they see the entitlements of the new phase), then,
later, invoices (they see the period's final usage). A provider without `next_due` still runs at
every step, and with `until` it does everything due by then; its own instants just don't add
steps (its work lands at the next step of another provider or at the target).

Each step is stored before its work runs and every provider is idempotent, so a runner that dies
mid-step is resumed by the next one (the same step runs again, then the loop continues).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable


class DueWork(Protocol):
    name: str

    def run_due(self, customer_ids: Sequence[str], until: datetime) -> int: ...


@runtime_checkable
class Scheduled(Protocol):
    def next_due(self, customer_ids: Sequence[str], after: datetime) -> datetime | None:
        """The earliest instant strictly after `after` at which work falls due (None: none)."""
        ...


def next_step(
    providers: Sequence[DueWork], customer_ids: Sequence[str], after: datetime, target: datetime
) -> datetime:
    """The next instant to stop at: the earliest due instant after `after`, capped at `target`."""
    step = target
    for provider in providers:
        if isinstance(provider, Scheduled):
            due = provider.next_due(customer_ids, after)
            if due is not None and after < due < step:
                step = due
    return step
