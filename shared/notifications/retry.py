"""Retry schedule: exponential backoff with jitter, for at least 24 hours after the first attempt.

Delay after failed attempt n (1-based) = min(BASE x 2^(n-1), CAP) x a jitter factor in [0.8, 1.2)
(jitter spreads retries of many events that failed together). A delivery whose failed attempt
happened RETRY_WINDOW or more after its first attempt is FAILED: so the last retry is always at
least 24 h after the first, whatever the jitter drew. About 14 attempts in total.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

BASE = timedelta(seconds=30)
CAP = timedelta(hours=4)
RETRY_WINDOW = timedelta(hours=24)
JITTER = (0.8, 1.2)

Random = Callable[[], float]  # [0, 1)


def backoff(attempt: int, rand: Random = random.random) -> timedelta:
    factor: float = 2 ** (attempt - 1)  # int ** int is typed Any (a negative power is a float)
    raw = min(BASE * factor, CAP)
    low, high = JITTER
    return raw * (low + (high - low) * rand())


def next_attempt(
    first_attempt: datetime, failed_at: datetime, attempt: int, rand: Random = random.random
) -> datetime | None:
    """When to retry after `attempt` failed at `failed_at`; None = give up (FAILED)."""
    if failed_at - first_attempt >= RETRY_WINDOW:
        return None
    return failed_at + backoff(attempt, rand)
