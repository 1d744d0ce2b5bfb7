"""What one stored event contributes to each meter that matches its type."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.meters.jsonpath import ValueError_, compile_path, dimension_value, numeric_value
from shared.meters.models import Aggregation, Meter

# Aggregations whose counters are sums of per-event numbers (avg = sum / count).
ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT, Aggregation.AVG})


@dataclass(frozen=True)
class Contribution:
    meter_id: str
    subject: str
    minute: datetime
    dims: tuple[tuple[str, str], ...]
    count: int
    total: Decimal


@dataclass(frozen=True)
class ValidationIssue:
    code: str
    message: str
    meter_key: str

    def to_api(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "attributes": {"meter": self.meter_key}}


class MeterIndex:
    """Live meters by event type, with their compiled paths."""

    def __init__(self, meters: list[Meter]) -> None:
        self.by_type: dict[str, list[Meter]] = {}
        for meter in meters:
            if meter.deleted_at is None:
                self.by_type.setdefault(meter.event_type, []).append(meter)

    def for_type(self, event_type: str) -> list[Meter]:
        return self.by_type.get(event_type, [])


def contributions(
    event: dict[str, Any], event_time: datetime, index: MeterIndex
) -> tuple[list[Contribution], list[ValidationIssue]]:
    data = event.get("data")
    found: list[Contribution] = []
    issues: list[ValidationIssue] = []
    minute = event_time.replace(second=0, microsecond=0)
    for meter in index.for_type(event["type"]):
        if meter.events_from is not None and event_time < meter.events_from:
            continue
        if meter.aggregation not in ADDITIVE:
            continue
        total = Decimal(0)
        if meter.aggregation != Aggregation.COUNT:
            try:
                total = numeric_value(data, compile_path(meter.value_property or "$"))
            except ValueError_ as exc:
                issues.append(ValidationIssue("invalid_value", f"invalid event: {exc}", meter.key))
                continue
        dims = tuple(
            sorted(
                (name, dimension_value(data, compile_path(path))) for name, path in meter.dimensions.items()
            )
        )
        found.append(Contribution(meter.id, event["subject"], minute, dims, 1, total))
    return found, issues
