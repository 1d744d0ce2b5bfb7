"""What one stored event contributes to each meter that matches its type (engine-rules §2.1-2.2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.events.keys import sortable
from shared.meters.jsonpath import ValueError_, compile_path, dimension_value, is_missing, numeric_value
from shared.meters.models import Aggregation, Meter

# Values longer than this are kept as a 128-bit hash in unique_count members (sort keys cap at 1 KiB).
MAX_INLINE_UNIQUE = 200
# UTF-8 bytes of one dimension value: it is stored in every counter item of its group (and the
# usage journal), which DynamoDB caps at 400 KB. A longer value is the event's problem for that
# meter (invalid_value), never a batch that can't be written.
MAX_DIMENSION_BYTES = 1024


@dataclass(frozen=True)
class Contribution:
    meter_id: str
    aggregation: Aggregation
    subject: str
    minute: datetime
    dims: tuple[tuple[str, str], ...]
    value: Decimal  # 0 for count meters
    # `latest`: the order of events, (time, source, id): ties in time break the same way everywhere
    order_key: str = ""
    unique: str | None = None  # unique_count member


@dataclass(frozen=True)
class ValidationIssue:
    code: str
    message: str
    meter_key: str | None = None  # None: about the event itself, not one meter
    attributes: tuple[tuple[str, str], ...] = ()

    def to_api(self) -> dict[str, Any]:
        attributes = dict(self.attributes)
        if self.meter_key is not None:
            attributes["meter"] = self.meter_key
        return {"code": self.code, "message": self.message, "attributes": attributes}


# Codes of issues that are about a meter's definition rather than the event (the aggregator
# records them against the meter as well).
METER_UNAVAILABLE = "meter_unavailable"


class MeterIndex:
    """Live meters by event type."""

    def __init__(self, meters: list[Meter]) -> None:
        self.by_type: dict[str, list[Meter]] = {}
        for meter in meters:
            if meter.deleted_at is None:
                self.by_type.setdefault(meter.event_type, []).append(meter)

    def for_type(self, event_type: str) -> list[Meter]:
        return self.by_type.get(event_type, [])


def unique_member(data: Any, path_expr: str) -> str:
    """unique_count stringifies any value (like group-by values); null or missing is invalid."""
    path = compile_path(path_expr)
    raw = path.find(data) if isinstance(data, dict) else None
    if not isinstance(data, dict) or is_missing(raw):
        raise ValueError_(f'missing value property: "{path_expr}"')
    if raw is None:
        raise ValueError_(f'null value property: "{path_expr}"')
    return dimension_value(data, path)


def contributions(
    event: dict[str, Any], event_time: datetime, index: MeterIndex
) -> tuple[list[Contribution], list[ValidationIssue]]:
    data = event.get("data")
    found: list[Contribution] = []
    issues: list[ValidationIssue] = []
    minute = event_time.replace(second=0, microsecond=0)
    order_key = f"{sortable(event_time)}#{event['source']}\x1f{event['id']}"
    for meter in index.for_type(event["type"]):
        if meter.problems:
            # Its stored definition can't be read: skip this meter only, and say so on the event.
            reasons = "; ".join(f"{k}: {v}" for k, v in sorted(meter.problems.items()))
            issues.append(
                ValidationIssue(METER_UNAVAILABLE, f"meter can't be evaluated: {reasons}", meter.key)
            )
            continue
        if meter.events_from is not None and event_time < meter.events_from:
            continue
        try:
            found.append(_contribution(meter, event, data, minute, order_key))
        except ValueError_ as exc:
            issues.append(ValidationIssue("invalid_value", f"invalid event: {exc}", meter.key))
        except Exception as exc:  # pure evaluation, no I/O: the failure is this record's own
            issues.append(
                ValidationIssue(
                    METER_UNAVAILABLE, f"meter can't be evaluated for this event: {exc!r}"[:300], meter.key
                )
            )
    return found, issues


def _contribution(
    meter: Meter, event: dict[str, Any], data: Any, minute: datetime, order_key: str
) -> Contribution:
    value = Decimal(0)
    unique = None
    if meter.aggregation == Aggregation.UNIQUE_COUNT:
        unique = unique_member(data, meter.value_property or "$")
    elif meter.aggregation != Aggregation.COUNT:
        value = numeric_value(data, compile_path(meter.value_property or "$"))
    dims = tuple(sorted((n, dimension_value(data, compile_path(p))) for n, p in meter.dimensions.items()))
    for name, dim in dims:
        if len(dim.encode("utf-8", "surrogatepass")) > MAX_DIMENSION_BYTES:
            raise ValueError_(f'dimension "{name}" is longer than {MAX_DIMENSION_BYTES} bytes')
    return Contribution(meter.id, meter.aggregation, event["subject"], minute, dims, value, order_key, unique)
