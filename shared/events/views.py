"""A page of listed events -> the contract's JSON (`list-metering-events`): each event with its
customer and validation errors, and the cursor links that keep the request's parameters."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from shared.events.models import Cursor, EventPage, ListedEvent, ListQuery

CUSTOMER_NOT_FOUND = "customer_not_found"


def event(listed: ListedEvent) -> dict[str, Any]:
    rec = listed.record
    subject = rec["subject"]
    body: dict[str, Any] = {"event": rec["event"]}
    if listed.customer_id is not None:
        body["customer"] = {"id": listed.customer_id}
    body["ingested_at"] = rec.get("ingested_at") or rec["stored_at"]
    body["stored_at"] = rec["stored_at"]
    errors = list(rec.get("validation_errors") or [])
    if listed.customer_id is None:
        errors.insert(
            0,
            {
                "code": CUSTOMER_NOT_FOUND,
                "message": f"no customer found for event subject: {subject}",
                "attributes": {"subject": subject},
            },
        )
    body["validation_errors"] = errors
    return body


def link(base_path: str, q: ListQuery, name: str | None, cursor: Cursor | None) -> str:
    params = {k: v for k, v in q.params.items() if k not in ("page[after]", "page[before]")}
    if name is not None and cursor is not None:
        params[f"page[{name}]"] = cursor.encode()
    if not params:
        return base_path
    return f"{base_path}?{urlencode(params, safe='[]', quote_via=quote)}"


def page(base_path: str, q: ListQuery, result: EventPage) -> dict[str, Any]:
    return {
        "data": [event(e) for e in result.events],
        "meta": {
            "page": {
                "size": q.size,
                "first": link(base_path, q, None, None),
                "last": link(base_path, q, "before", result.last),
                "next": link(base_path, q, "after", result.next) if result.next else None,
                "previous": link(base_path, q, "before", result.previous) if result.previous else None,
            }
        },
    }
