"""Domain events to SNS: the entitlement engine publishes, the notify function subscribes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from shared.aws import clients
from shared.core.timeutil import format_rfc3339


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
        body = {"id": event_id, "type": event_type, "time": format_rfc3339(at), "data": data}
        (self._client or clients.sns()).publish(
            TopicArn=self.topic_arn,
            Message=orjson.dumps(body, default=_default).decode(),
            MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
        )
        return event_id
