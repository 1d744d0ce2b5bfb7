"""Features -> the contract's JSON (`Feature`, and a page of them)."""

from __future__ import annotations

from typing import Any

from shared.api.params import Page
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.features.models import Feature


def feature(f: Feature) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f.id,
        "key": f.key,
        "name": f.name,
        "created_at": format_rfc3339(f.created_at),
        "updated_at": format_rfc3339(f.updated_at),
    }
    if f.description is not None:
        body["description"] = f.description
    if f.labels is not None:
        body["labels"] = f.labels
    if f.meter_id is not None:
        body["meter"] = {"id": f.meter_id}
        if f.meter_filters:
            body["meter"]["filters"] = dict(f.meter_filters)
    if f.unit_cost is not None:
        body["unit_cost"] = f.unit_cost.to_api()
    if f.archived_at is not None:
        body["deleted_at"] = format_rfc3339(f.archived_at)
    return body


def page(p: Page, listed: Listed[Feature]) -> dict[str, Any]:
    return p.response([feature(f) for f in listed.items], listed.total)
