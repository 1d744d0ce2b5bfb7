"""Ingest: validate a request's CloudEvents, then make them durable in Kinesis."""

from __future__ import annotations

from typing import Any

import orjson

from shared.api.problem import (
    BadRequest,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    invalid_parameter,
)
from shared.core.timeutil import Clock, format_rfc3339
from shared.ingest.cloudevents import EventError, normalize_event
from shared.ingest.publisher import MAX_RECORD_BYTES, KinesisPublisher, PublishError, partition_key

SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PLAIN = "application/json"
ACCEPTED_TYPES = (SINGLE, BATCH, PLAIN)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class IngestService:
    def __init__(
        self, publisher: KinesisPublisher, max_events: int, max_bytes: int, clock: Clock | None = None
    ):
        self.publisher = publisher
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.clock = clock or Clock()

    def parse(self, body: bytes, content_type: str | None) -> list[dict[str, Any]]:
        """Validate the whole request first: nothing is published unless every event is valid."""
        kind = media_type(content_type)
        if kind not in ACCEPTED_TYPES:
            raise UnsupportedMediaType(
                f"Content-Type [{kind or 'missing'}] is not accepted; use one of {', '.join(ACCEPTED_TYPES)}"
            )
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(
                f"Request body of {len(body)} bytes exceeds the limit of {self.max_bytes} bytes"
            )
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
        if len(raw_events) > self.max_events:
            raise PayloadTooLarge(
                f"Batch of {len(raw_events)} events exceeds the limit of {self.max_events} events per request"
            )
        now = self.clock.now()
        events: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, raw in enumerate(raw_events):
            try:
                events.append(normalize_event(raw, now, f"[{index}]" if batch else ""))
            except EventError as exc:
                errors.extend(exc.params)
        if errors:
            first = errors[0]
            raise BadRequest(f"Invalid event [{first['field']}]: {first['reason']}", errors[:100])
        return events

    def ingest(self, body: bytes, content_type: str | None) -> int:
        events = self.parse(body, content_type)
        ingested_at = format_rfc3339(self.clock.now())
        records = [
            (partition_key(e["source"], e["id"]), orjson.dumps({"event": e, "ingested_at": ingested_at}))
            for e in events
        ]
        for index, (key, data) in enumerate(records):
            if len(key) + len(data) > MAX_RECORD_BYTES:
                raise PayloadTooLarge(
                    f"Event [{index}] is too large: each event must be under {MAX_RECORD_BYTES} bytes"
                )
        try:
            self.publisher.publish(records)
        except PublishError as exc:
            raise ServiceUnavailable(
                f"{exc}; resend the request (events are deduplicated on source and id)"
            ) from exc
        return len(events)
