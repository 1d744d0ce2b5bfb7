"""Meters -> the contract's JSON (`Meter`, and a page of them)."""

from __future__ import annotations

from typing import Any

from shared.api.params import Page
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.meters.models import Meter


def meter(m: Meter) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": m.id,
        "key": m.key,
        "name": m.name,
        "aggregation": m.aggregation.value,
        "event_type": m.event_type,
        "created_at": format_rfc3339(m.created_at),
        "updated_at": format_rfc3339(m.updated_at),
        "dimensions": dict(m.dimensions),
    }
    if m.description is not None:
        body["description"] = m.description
    if m.labels is not None:
        body["labels"] = m.labels
    if m.events_from is not None:
        body["events_from"] = format_rfc3339(m.events_from)
    if m.value_property is not None:
        body["value_property"] = m.value_property
    if m.deleted_at is not None:
        body["deleted_at"] = format_rfc3339(m.deleted_at)
    return body


def page(p: Page, listed: Listed[Meter]) -> dict[str, Any]:
    return p.response([meter(m) for m in listed.items], listed.total)
