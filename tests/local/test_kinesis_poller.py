"""The Kinesis event-source emulation must behave like Lambda's ESM: shape, order, partial
failures, bisection, retries, on-failure destination, and never skipping a record."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from local.kinesis_poller import EsmConfig, KinesisPoller, ShardPoller

STREAM = "test-events"
Batch = list[dict[str, Any]]


def _setup(aws: dict[str, Any], shards: int = 1) -> tuple[str, str]:
    aws["kinesis"].create_stream(StreamName=STREAM, ShardCount=shards)
    arn = aws["kinesis"].describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    dlq = aws["sqs"].create_queue(QueueName="dlq")["QueueUrl"]
    return arn, dlq


def _put(aws: dict[str, Any], n: int, key: str = "k") -> list[str]:
    seqs = []
    for i in range(n):
        resp = aws["kinesis"].put_record(
            StreamName=STREAM, Data=json.dumps({"i": i}).encode(), PartitionKey=key
        )
        seqs.append(resp["SequenceNumber"])
    return seqs


def _shard(aws: dict[str, Any], handler: Callable[[dict[str, Any], Any], Any], **cfg: Any) -> ShardPoller:
    arn, dlq = _setup(aws)
    shard_id = aws["kinesis"].list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    config = EsmConfig(retry_backoff=0, **cfg)
    return ShardPoller(
        kinesis=aws["kinesis"],
        sqs=aws["sqs"],
        handler=handler,
        stream_name=STREAM,
        stream_arn=arn,
        shard_id=shard_id,
        dlq_url=dlq,
        config=config,
        stop=threading.Event(),
    )


class Recorder:
    """Fake aggregate handler: records each call's sequence numbers, answers from a script."""

    def __init__(self, answer: Callable[[list[str], int], Any] = lambda seqs, call: None) -> None:
        self.calls: list[list[str]] = []
        self.events: list[dict[str, Any]] = []
        self.answer = answer

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        self.calls.append(seqs)
        self.events.append(event)
        return self.answer(seqs, len(self.calls))


def _failures(*seqs: str) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": s} for s in seqs]}


def _dlq_messages(aws: dict[str, Any], url: str) -> list[dict[str, Any]]:
    msgs = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


def test_delivers_in_order_in_lambda_kinesis_shape(aws: dict[str, Any]) -> None:
    rec = Recorder()
    shard = _shard(aws, rec)
    seqs = _put(aws, 5)
    assert shard.step() == 5
    assert rec.calls == [seqs]
    record = rec.events[0]["Records"][2]
    assert set(rec.events[0]) == {"Records"}
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "k",
            "sequenceNumber": seqs[2],
            "data": base64.b64encode(b'{"i": 2}').decode(),
            "approximateArrivalTimestamp": record["kinesis"]["approximateArrivalTimestamp"],
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard.shard_id}:{seqs[2]}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/local",
        "awsRegion": "us-east-1",
        "eventSourceARN": f"arn:aws:kinesis:us-east-1:123456789012:stream/{STREAM}",
    }
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)
    assert abs(record["kinesis"]["approximateArrivalTimestamp"] - time.time()) < 60
    assert shard.stats.last_sequence == seqs[-1]
    assert shard.step() == 0 and len(rec.calls) == 1  # checkpoint moved past the batch


def test_batch_size_limits_each_invocation(aws: dict[str, Any]) -> None:
    rec = Recorder()
    shard = _shard(aws, rec, batch_size=2)
    seqs = _put(aws, 5)
    while shard.step():
        pass
    assert rec.calls == [seqs[0:2], seqs[2:4], seqs[4:5]]


def test_partial_failure_redelivers_from_lowest_failed_sequence(aws: dict[str, Any]) -> None:
    seqs: list[str] = []
    rec = Recorder(
        lambda batch, call: _failures(seqs[4], seqs[2]) if call == 1 else {"batchItemFailures": []}
    )
    shard = _shard(aws, rec)
    seqs.extend(_put(aws, 6))
    shard.step()
    # s0, s1 acknowledged; s2.. re-delivered, including s3 and s5 that had succeeded
    assert rec.calls == [seqs, seqs[2:]]
    assert shard.stats.acknowledged == 6 and shard.stats.dead_lettered == 0
    assert shard.step() == 0 and len(rec.calls) == 2


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "ok"])
def test_empty_or_null_response_is_success(aws: dict[str, Any], response: Any) -> None:
    rec = Recorder(lambda batch, call: response)
    shard = _shard(aws, rec)
    seqs = _put(aws, 3)
    shard.step()
    assert rec.calls == [seqs]


@pytest.mark.parametrize(
    "bad",
    [
        {"batchItemFailures": [{"itemIdentifier": "49999999999999999999"}]},  # not in the batch
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "x"}]},
        {"batchItemFailures": "all"},
    ],
)
def test_unusable_item_identifier_fails_whole_batch(aws: dict[str, Any], bad: dict[str, Any]) -> None:
    rec = Recorder(lambda batch, call: bad if call == 1 else None)
    shard = _shard(aws, rec, bisect_on_error=False)
    seqs = _put(aws, 3)
    shard.step()
    assert rec.calls == [seqs, seqs]  # whole batch retried, nothing acknowledged after call 1


def test_raising_handler_bisects_until_it_succeeds(aws: dict[str, Any]) -> None:
    def answer(batch: list[str], call: int) -> None:
        if len(batch) > 2:
            raise RuntimeError("batch too large for this fake")

    rec = Recorder(answer)
    shard = _shard(aws, rec, max_retries=0)  # splitting must not use up retries
    s = _put(aws, 8)
    shard.step()
    assert rec.calls == [s, s[:4], s[:2], s[2:4], s[4:], s[4:6], s[6:]]
    assert shard.stats.acknowledged == 8 and shard.stats.dead_lettered == 0


def test_exhausted_retries_dead_letter_and_move_on(aws: dict[str, Any]) -> None:
    seqs: list[str] = []

    def answer(batch: list[str], call: int) -> None:
        if seqs[2] in batch:
            raise RuntimeError("poison record")

    rec = Recorder(answer)
    shard = _shard(aws, rec, max_retries=2)
    seqs.extend(_put(aws, 4))
    a, b, x, c = seqs
    shard.step()
    # bisect [a b | x c]; [x c] fails -> [x | c]; x fails 1 + 2 retries -> DLQ; then c
    assert rec.calls == [seqs, [a, b], [x, c], [x], [x], [x], [c]]
    assert shard.stats.dead_lettered == 1 and shard.stats.acknowledged == 3
    [msg] = _dlq_messages(aws, shard.dlq_url)
    assert msg["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert msg["requestContext"]["functionArn"].endswith(":function:meterline-aggregate")
    assert msg["KinesisBatchInfo"] | {
        "approximateArrivalOfFirstRecord": None,
        "approximateArrivalOfLastRecord": None,
    } == {
        "shardId": shard.shard_id,
        "startSequenceNumber": x,
        "endSequenceNumber": x,
        "approximateArrivalOfFirstRecord": None,
        "approximateArrivalOfLastRecord": None,
        "batchSize": 1,
        "streamArn": shard.stream_arn,
    }
    assert msg["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"].endswith("Z")
    assert shard.step() == 0  # moved past the dead-lettered record for good


def test_exhausted_partial_failures_dead_letter_the_remainder(aws: dict[str, Any]) -> None:
    seqs: list[str] = []
    rec = Recorder(lambda batch, call: _failures(seqs[1]))
    shard = _shard(aws, rec, max_retries=1)
    seqs.extend(_put(aws, 3))
    shard.step()
    assert rec.calls == [seqs, seqs[1:]]
    [msg] = _dlq_messages(aws, shard.dlq_url)
    info = msg["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        seqs[1],
        seqs[2],
        2,
    )


def test_threaded_pollers_never_lose_or_skip_records(aws: dict[str, Any]) -> None:
    arn, dlq = _setup(aws, shards=2)
    rng = random.Random(7)
    lock = threading.Lock()
    processed: dict[str, list[str]] = {}  # shard -> seqs acknowledged, in order

    def flaky(event: dict[str, Any], context: Any) -> Any:
        records = event["Records"]
        shard_id = records[0]["eventID"].split(":")[0]
        with lock:
            roll = rng.random()
        if roll < 0.2:
            raise RuntimeError("transient")
        ok = records
        answer: Any = None
        if roll < 0.4 and len(records) > 1:
            cut = rng.randrange(len(records))
            ok, answer = records[:cut], _failures(records[cut]["kinesis"]["sequenceNumber"])
        with lock:
            processed.setdefault(shard_id, []).extend(r["kinesis"]["sequenceNumber"] for r in ok)
        return answer

    poller = KinesisPoller(
        kinesis=aws["kinesis"],
        sqs=aws["sqs"],
        handler=flaky,
        stream_name=STREAM,
        stream_arn=arn,
        dlq_url=dlq,
        config=EsmConfig(batch_size=25, poll_interval=0.01, retry_backoff=0, max_retries=-1),
    )
    poller.start()
    try:
        put: list[str] = []
        for chunk in range(4):
            entries = [{"Data": b"x", "PartitionKey": f"p{chunk}-{i}"} for i in range(50)]
            put += [
                r["SequenceNumber"]
                for r in aws["kinesis"].put_records(StreamName=STREAM, Records=entries)["Records"]
            ]
        poller.drain(timeout=20)
    finally:
        poller.stop()
    assert sorted(s for seqs in processed.values() for s in seqs) == sorted(put)
    for seqs in processed.values():
        assert seqs == sorted(seqs, key=int)  # acknowledged exactly once each, in shard order
    assert sum(s.stats.dead_lettered for s in poller.shards) == 0
    assert sum(s.stats.failed_invocations for s in poller.shards) > 0  # the retry paths were exercised
