"""`POST /events`: the request's media type, size and JSON shape, before any event is looked at.
The only ingest module that knows HTTP; each event is then validated by the service
(CloudEvents, cloudevents.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shared.api.problem import BadRequest, PayloadTooLarge, UnsupportedMediaType, invalid_parameter

SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PLAIN = "application/json"
ACCEPTED_TYPES = (SINGLE, BATCH, PLAIN)


@dataclass(frozen=True)
class IngestRequest:
    events: list[Any]  # the events as sent, not validated yet
    batch: bool  # sent as an array: errors name each event's index


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse(body: bytes, content_type: str | None, max_events: int, max_bytes: int) -> IngestRequest:
    """The whole request is checked first: nothing is published unless every event is valid."""
    kind = media_type(content_type)
    if kind not in ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type [{kind or 'missing'}] is not accepted; use one of {', '.join(ACCEPTED_TYPES)}"
        )
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"Request body of {len(body)} bytes exceeds the limit of {max_bytes} bytes")
    if not body.strip():
        raise BadRequest.field("body", "request body is required", "required")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest.field("body", f"is not valid JSON ({exc.msg})", "invalid") from exc
    if kind == SINGLE and not isinstance(payload, dict):
        raise BadRequest.field("body", f"{SINGLE} takes a single event object", "is_object")
    if kind == BATCH and not isinstance(payload, list):
        raise BadRequest.field("body", f"{BATCH} takes an array of events", "is_array")
    batch = isinstance(payload, list)
    raw_events = payload if batch else [payload]
    if not raw_events:
        raise BadRequest(
            "Invalid [body]: the batch contains no events",
            [{**invalid_parameter("body", "the batch contains no events", "min_items"), "minimum": 1}],
        )
    if len(raw_events) > max_events:
        raise PayloadTooLarge(
            f"Batch of {len(raw_events)} events exceeds the limit of {max_events} events per request"
        )
    return IngestRequest(raw_events, batch)
