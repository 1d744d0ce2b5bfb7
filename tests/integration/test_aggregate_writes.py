"""The aggregate function writes only what is new: existing unique_count members and subject-index
items are learnt by a read and not rewritten (issue 12); the known-subjects memory is bounded."""

from __future__ import annotations

from collections import Counter
from typing import Any

from functions.aggregate import handler as aggregate_handler
from shared.aws import clients
from shared.usage.aggregator import RecentSet
from tests.support.harness import Stack


def usage_puts(stack: Stack, events: list[dict[str, Any]]) -> Counter[str]:
    """Items put into the usage table while `events` are aggregated, by key prefix (U#, S#)."""
    puts: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        for requests in params.get("RequestItems", {}).values():
            for req in requests:
                pk = req["PutRequest"]["Item"]["pk"]["S"]
                if pk[:2] in ("U#", "S#"):
                    puts[pk[:2]] += 1

    events_hook = clients.dynamodb().meta.events
    events_hook.register("before-parameter-build.dynamodb.BatchWriteItem", count)
    try:
        stack.ingest(events)
        stack.drain()
    finally:
        events_hook.unregister("before-parameter-build.dynamodb.BatchWriteItem", count)
    return puts


def ev(i: int, user: str, subject: str = "acme") -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "source": "t",
        "type": "usage",
        "subject": subject,
        "time": f"2026-05-01T10:{i:02d}:00Z",
        "data": {"user": user},
    }


def test_members_and_subjects_that_exist_are_not_written_again(stack: Stack) -> None:
    resp = stack.request(
        "POST",
        "/meters",
        {
            "key": "users",
            "name": "users",
            "aggregation": "unique_count",
            "event_type": "usage",
            "value_property": "$.user",
        },
    )
    assert resp.status == 201, resp
    first = usage_puts(stack, [ev(0, "u1")])
    assert first == {"U#": 4, "S#": 1}  # one member per level, one subject-index item
    # A new minute with the same user: only the minute's member is new (quarter, hour, day exist).
    aggregate_handler.aggregator.cache_clear()  # a cold start: nothing remembered in memory
    second = usage_puts(stack, [ev(20, "u1")])
    assert second == {"U#": 2}  # the minute and the quarter hour (10:15-10:30) are new
    day = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"}
    data = stack.request("POST", f"/meters/{resp.json()['id']}/query", day).json()["data"]
    assert [r["value"] for r in data] == ["1"]


def test_recent_set_forgets_the_least_recently_seen() -> None:
    known = RecentSet[str](2)
    known.add("a")
    known.add("b")
    assert known.seen("a")  # "a" is now the most recent
    known.add("c")
    assert len(known) == 2
    assert known.seen("a") and known.seen("c") and not known.seen("b")
