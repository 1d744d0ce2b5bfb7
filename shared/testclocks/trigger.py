"""Asking for an advance run: a `test_clock.advance_requested` message on the SNS domain topic.

The rate function is subscribed to the topic for this type only (a filter policy, on AWS and
locally alike), so the run starts within moments instead of at the next 5-minute schedule, and
runs outside the API request (API Gateway's 29 s limit). A run that pauses for lack of time asks
again the same way. A message lost or failed is covered by the schedule, which resumes every
clock still advancing.
"""

from __future__ import annotations

from datetime import datetime

from shared.aws.publisher import DomainPublisher

ADVANCE_REQUESTED = "test_clock.advance_requested"


class PublishedTrigger:
    def __init__(self, publisher: DomainPublisher) -> None:
        self.publisher = publisher

    def advance_requested(self, clock_id: str, at: datetime) -> None:
        self.publisher.publish(ADVANCE_REQUESTED, {"test_clock": {"id": clock_id}}, at)


def requested_clock_ids(messages: list[dict[str, object]]) -> list[str]:
    """The clock ids in decoded domain messages of this type (others are ignored)."""
    ids = []
    for msg in messages:
        data = msg.get("data")
        if msg.get("type") == ADVANCE_REQUESTED and isinstance(data, dict):
            clock = data.get("test_clock")
            if isinstance(clock, dict) and isinstance(clock.get("id"), str):
                ids.append(clock["id"])
    return list(dict.fromkeys(ids))
