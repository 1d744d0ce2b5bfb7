"""DomainPublisher.publish_many: the same messages as `publish`, in PublishBatch requests within SNS's
limits (10 entries, 256 KiB), and an error unless SNS took every entry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared.aws.publisher import BATCH_BYTES, DomainPublisher, PublishFailed

AT = datetime(2026, 11, 1, 2, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:domain"


class FakeSns:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.single: list[dict[str, Any]] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail or set()

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.single.append(kwargs)
        return {"MessageId": "m"}

    def publish_batch(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["TopicArn"] == TOPIC
        entries: list[dict[str, Any]] = kwargs["PublishBatchRequestEntries"]
        self.batches.append(entries)
        failed = [
            {"Id": e["Id"], "Code": "InternalError", "SenderFault": False}
            for e in entries
            if orjson.loads(e["Message"])["id"] in self.fail
        ]
        return {"Successful": [], "Failed": failed}


def events(n: int, size: int = 10) -> list[tuple[str, dict[str, Any], datetime, str]]:
    return [("invoice.updated", {"i": i, "pad": "x" * size}, AT, f"id-{i}") for i in range(n)]


def test_a_batch_entry_is_the_message_publish_sends() -> None:
    sns = FakeSns()
    DomainPublisher(TOPIC, sns).publish("invoice.updated", {"i": 0, "pad": "x" * 10}, AT, event_id="id-0")
    DomainPublisher(TOPIC, sns).publish_many(events(1))
    (single,), ((entry,),) = sns.single, sns.batches
    assert {k: v for k, v in entry.items() if k != "Id"} == {
        k: v for k, v in single.items() if k != "TopicArn"
    }
    assert orjson.loads(entry["Message"]) == {
        "id": "id-0",
        "type": "invoice.updated",
        "time": "2026-11-01T02:00:00Z",
        "data": {"i": 0, "pad": "xxxxxxxxxx"},
    }


def test_ten_entries_per_request_in_order() -> None:
    sns = FakeSns()
    DomainPublisher(TOPIC, sns).publish_many(events(23))
    # 23 events: 10 + 10 + 3, each batch's entry ids distinct (0..n-1), the events in their order.
    assert [len(b) for b in sns.batches] == [10, 10, 3]
    assert [[e["Id"] for e in b] for b in sns.batches][2] == ["0", "1", "2"]
    sent = [orjson.loads(e["Message"])["id"] for b in sns.batches for e in b]
    assert sent == [f"id-{i}" for i in range(23)]


def test_a_request_stays_within_256_kib() -> None:
    sns = FakeSns()
    # Each message is ~100 KiB: two fit in 256 KiB, a third doesn't: 5 events go as 2 + 2 + 1.
    DomainPublisher(TOPIC, sns).publish_many(events(5, size=100 * 1024))
    assert [len(b) for b in sns.batches] == [2, 2, 1]
    for b in sns.batches:
        assert sum(len(e["Message"].encode()) for e in b) <= BATCH_BYTES


def test_an_entry_sns_refuses_is_an_error() -> None:
    sns = FakeSns(fail={"id-12"})
    with pytest.raises(PublishFailed):
        DomainPublisher(TOPIC, sns).publish_many(events(15))
    assert len(sns.batches) == 2  # the caller keeps its outbox and publishes all 15 again


def test_nothing_to_publish_sends_nothing() -> None:
    sns = FakeSns()
    DomainPublisher(TOPIC, sns).publish_many([])
    assert sns.batches == [] and sns.single == []
