"""Test clock domain types (Stripe's test clock semantics, shared/testclocks/service.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ClockStatus(StrEnum):
    READY = "ready"  # frozen at `frozen_time`
    ADVANCING = "advancing"  # moving towards `target_frozen_time`; `frozen_time` is how far it got


@dataclass
class TestClock:
    __test__ = False  # (not a pytest class)

    id: str
    name: str | None
    frozen_time: datetime
    status: ClockStatus
    created_at: datetime
    updated_at: datetime
    target_frozen_time: datetime | None = None
    customer_count: int = 0
