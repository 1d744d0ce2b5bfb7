"""The meter: what it aggregates from which events (requests.py parses the contract's bodies)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

RESOURCE_KEY = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"
DIMENSION_KEY = re.compile(r"^[a-zA-Z_][0-9a-zA-Z_]*$")
# `subject` and `customer_id` are reserved query dimensions (contract MeterQueryRow).
RESERVED_DIMENSIONS = frozenset({"subject", "customer_id"})
MAX_DIMENSIONS = 20


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"
    UNIQUE_COUNT = "unique_count"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LATEST = "latest"


@dataclass
class Meter:
    id: str
    key: str
    name: str
    aggregation: Aggregation
    event_type: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    events_from: datetime | None = None
    value_property: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)
    deleted_at: datetime | None = None
    # Stored fields that could not be read (field -> reason): the meter still lists, reads and
    # deletes, but the pipeline can't evaluate it and skips it (docs/architecture.md).
    problems: dict[str, str] = field(default_factory=dict)
    unread: dict[str, Any] = field(default_factory=dict)  # their stored values, kept on writes
