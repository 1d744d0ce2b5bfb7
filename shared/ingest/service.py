"""Ingest: validate a request's CloudEvents, then make them durable in Kinesis.

Takes the parsed request (requests.py), raises domain errors: InvalidInput naming each bad event
field, TooLarge for an event over the record limit, Unavailable when Kinesis refused (resend).
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.core.errors import FieldError, InvalidInput, TooLarge, Unavailable
from shared.core.timeutil import Clock, format_rfc3339
from shared.ingest.cloudevents import EventError, normalize_event
from shared.ingest.publisher import MAX_RECORD_BYTES, KinesisPublisher, PublishError, partition_key
from shared.ingest.requests import IngestRequest


class IngestService:
    def __init__(
        self, publisher: KinesisPublisher, max_events: int, max_bytes: int, clock: Clock | None = None
    ):
        self.publisher = publisher
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.clock = clock or Clock()

    def validate(self, request: IngestRequest) -> list[dict[str, Any]]:
        """Every event normalised, or InvalidInput naming every bad field (the first 100)."""
        now = self.clock.now()
        events: list[dict[str, Any]] = []
        errors: list[FieldError] = []
        for index, raw in enumerate(request.events):
            try:
                events.append(normalize_event(raw, now, f"[{index}]" if request.batch else ""))
            except EventError as exc:
                errors.extend(exc.params)
        if errors:
            first = errors[0]
            raise InvalidInput(f"Invalid event [{first.field}]: {first.reason}", tuple(errors[:100]))
        return events

    def ingest(self, request: IngestRequest) -> int:
        events = self.validate(request)
        ingested_at = format_rfc3339(self.clock.now())
        records = [
            (partition_key(e["source"], e["id"]), orjson.dumps({"event": e, "ingested_at": ingested_at}))
            for e in events
        ]
        for index, (key, data) in enumerate(records):
            if len(key) + len(data) > MAX_RECORD_BYTES:
                raise TooLarge(
                    f"Event [{index}] is too large: each event must be under {MAX_RECORD_BYTES} bytes"
                )
        try:
            self.publisher.publish(records)
        except PublishError as exc:
            raise Unavailable(
                f"{exc}; resend the request (events are deduplicated on source and id)"
            ) from exc
        return len(events)
