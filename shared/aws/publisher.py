"""Domain events to SNS: the entitlement engine publishes, the notify function subscribes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from shared.aws import clients
from shared.core.timeutil import format_rfc3339

# SNS PublishBatch: at most 10 entries and 256 KiB of messages and attributes per request.
BATCH_ENTRIES = 10
BATCH_BYTES = 256 * 1024
Event = tuple[str, dict[str, Any], datetime, str]  # (type, data, time, id)


class PublishFailed(Exception):
    """SNS refused some entries of a batch: the caller keeps what it published and retries it all
    (consumers dedupe on the ids)."""


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value)
    return str(value)  # Decimal and friends travel as strings (exact)


class DomainPublisher:
    def __init__(self, topic_arn: str, client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    def publish(
        self, event_type: str, data: dict[str, Any], at: datetime, event_id: str | None = None
    ) -> str:
        """Publish one event `{id, type, time, data}`; returns its id (the idempotency key downstream).

        Pass a deterministic `event_id` when the same fact may be published twice (a retried
        batch): consumers dedupe on it."""
        event_id = event_id or str(uuid.uuid4())
        (self._client or clients.sns()).publish(
            TopicArn=self.topic_arn, **_message(event_type, data, at, event_id)
        )
        return event_id

    def publish_many(self, events: Sequence[Event]) -> None:
        """Publish several events, each exactly as `publish` would, in as few PublishBatch requests
        as SNS's limits allow (10 entries, 256 KiB): an invoice's transitions in one request instead
        of one each. Raises (PublishFailed, or the client's error) unless SNS took every entry;
        what went out before that may be published again, so each event needs its own stable id."""
        client = self._client or clients.sns()
        batch: list[dict[str, Any]] = []
        size = 0

        def send() -> None:
            resp = client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=batch)
            if resp.get("Failed"):
                raise PublishFailed(f"SNS refused {len(resp['Failed'])} of {len(batch)}: {resp['Failed'][0]}")

        for event_type, data, at, event_id in events:
            entry = _message(event_type, data, at, event_id)
            bytes_ = len(entry["Message"].encode()) + len("type") + len("String") + len(event_type.encode())
            if batch and (len(batch) == BATCH_ENTRIES or size + bytes_ > BATCH_BYTES):
                send()
                batch, size = [], 0
            batch.append({"Id": str(len(batch)), **entry})
            size += bytes_
        if batch:
            send()


def _message(event_type: str, data: dict[str, Any], at: datetime, event_id: str) -> dict[str, Any]:
    """One event's SNS message: `{id, type, time, data}`, its type also as an attribute (filters)."""
    body = {"id": event_id, "type": event_type, "time": format_rfc3339(at), "data": data}
    return {
        "Message": orjson.dumps(body, default=_default).decode(),
        "MessageAttributes": {"type": {"DataType": "String", "StringValue": event_type}},
    }
