"""Entitlement and grant records, and their translation to the balance engine's terms.

Types (engine-rules §2.4): `metered` (access from balance), `boolean` (access while active),
`static` (access while active + a JSON object `config`). At most one active entitlement per
customer and feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from shared.core.timeutil import format_rfc3339
from shared.meters.models import Aggregation


class EntitlementType(StrEnum):
    METERED = "metered"
    BOOLEAN = "boolean"
    STATIC = "static"


# Aggregations whose grants burn down (budgets) vs act as limits (gauges). engine README.
ADDITIVE_AGGREGATIONS = frozenset({Aggregation.SUM, Aggregation.COUNT, Aggregation.UNIQUE_COUNT})
GAUGE_AGGREGATIONS = frozenset({Aggregation.LATEST, Aggregation.MAX, Aggregation.AVG})
# `min` is the one aggregation an allowance can't mean anything for.
ENTITLEMENT_AGGREGATIONS = ADDITIVE_AGGREGATIONS | GAUGE_AGGREGATIONS


@dataclass
class ResetRecord:
    at: datetime
    preserve_overage: bool
    retain_anchor: bool

    def to_record(self) -> dict[str, Any]:
        return {
            "at": format_rfc3339(self.at),
            "preserve_overage": self.preserve_overage,
            "retain_anchor": self.retain_anchor,
        }


@dataclass
class Entitlement:
    id: str
    type: EntitlementType
    customer_id: str
    feature_id: str
    feature_key: str
    created_at: datetime
    updated_at: datetime
    # metered
    meter_id: str | None = None
    usage_period_interval: str | None = None
    usage_period_anchor: datetime | None = None
    measure_usage_from: datetime | None = None
    is_soft_limit: bool = False
    preserve_overage_at_reset: bool = False
    issue_after_reset: Decimal | None = None
    issue_after_reset_priority: int = 1
    resets: list[ResetRecord] = field(default_factory=list)
    # static
    config: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    deleted_at: datetime | None = None


@dataclass
class GrantRecord:
    id: str
    entitlement_id: str
    amount: Decimal
    priority: int
    effective_at: datetime
    created_at: datetime
    expires_at: datetime | None = None
    voided_at: datetime | None = None
    min_rollover_amount: Decimal = Decimal(0)
    max_rollover_amount: Decimal | None = None
    recurrence_interval: str | None = None
    recurrence_anchor: datetime | None = None
    metadata: dict[str, str] | None = None
    annotations: dict[str, Any] = field(default_factory=dict)


# -- what the use cases return (rendered by views.py) -------------------------------------------
Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class CurrentEntitlement:
    """An entitlement with its current usage period (metered and not deleted), as of the read."""

    entitlement: Entitlement
    usage_period: Period | None = None


@dataclass(frozen=True)
class CurrentGrant:
    grant: GrantRecord
    next_recurrence: datetime | None = None


@dataclass(frozen=True)
class PlainAccess:
    """The value of a boolean or static entitlement, or of none at all: access, no balance."""

    has_access: bool
    config: dict[str, Any] | None = None  # static entitlements only


@dataclass(frozen=True)
class WindowUsage:
    period: Period
    usage: Decimal
    balance_at_start: Decimal


@dataclass(frozen=True)
class History:
    windows: list[WindowUsage]
    segments: list[Any]  # engine.Segment (kept out of this module's imports: the engine is pure)
