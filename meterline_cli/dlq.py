"""Replaying dead-lettered Kinesis ranges of the aggregate function, in process.

The aggregate event source mapping sends Lambda's on-failure record (shard, first and last
sequence number, stream ARN; no data) to the DLQ once a batch exhausts its retries. The records
are still in the stream (retention 7 days). A replay reads exactly that range with
AT_SEQUENCE_NUMBER and runs the same `Aggregator` the Lambda runs (built from the stack's names
with the operator's credentials), in batches, under the record's own shard and sequence numbers.

Why that is exact: a stored event's claim is `<shard>/<position>`, so the replayed record still
owns its event; a counter adds only parts after its `ap#<shard>` position. The failed attempts
applied each counter's parts of the range all-or-nothing (one conditional write per counter),
so replaying adds exactly what is missing, and a second replay adds nothing.

The limit (checked before any write): once the shard's later records have moved a counter's
`ap#<shard>` past the range's end, that counter cannot tell whether the range was applied to it
before the failure; it would be skipped. Such counters are reported as "overtaken" and the
replay is refused unless forced (then the decidable counters are fixed and the rest named).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from local.kinesis_poller import to_lambda_record
from shared.aws.dynamo import batch_get
from shared.core.timeutil import parse_rfc3339
from shared.usage.aggregator import Aggregator, StreamRecord, decode_records
from shared.usage.counters import encode_position, pre_aggregate
from shared.usage.extract import MeterIndex, contributions

MAX_RECEIVE_ROUNDS = 20


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    shard_id: str
    start_sequence: str
    end_sequence: str
    batch_size: int
    stream_arn: str
    condition: str
    timestamp: str

    @property
    def stream_name(self) -> str:
        return self.stream_arn.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "shard_id": self.shard_id,
            "start_sequence": self.start_sequence,
            "end_sequence": self.end_sequence,
            "batch_size": self.batch_size,
            "stream_arn": self.stream_arn,
            "condition": self.condition,
            "timestamp": self.timestamp,
        }


def parse_message(message: dict[str, Any]) -> DeadLetter:
    body = json.loads(message["Body"])
    info = body["KinesisBatchInfo"]
    return DeadLetter(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        shard_id=info["shardId"],
        start_sequence=info["startSequenceNumber"],
        end_sequence=info["endSequenceNumber"],
        batch_size=int(info["batchSize"]),
        stream_arn=info["streamArn"],
        condition=str((body.get("requestContext") or {}).get("condition", "")),
        timestamp=str(body.get("timestamp", "")),
    )


def receive_all(sqs: Any, queue_url: str, visibility_timeout: int) -> list[DeadLetter]:
    """Every message currently in the queue (deduplicated by id). `visibility_timeout` 0 only peeks;
    a replay hides what it received for that long so a parallel replay cannot pick it up."""
    seen: dict[str, DeadLetter] = {}
    for _ in range(MAX_RECEIVE_ROUNDS):
        resp = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=0,
        )
        fresh = [m for m in resp.get("Messages", []) if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen[m["MessageId"]] = parse_message(m)
    return list(seen.values())


def read_range(kinesis: Any, letter: DeadLetter, page: int = 1000) -> list[dict[str, Any]]:
    """The range's records in Lambda's event shape (eventID `<shard>:<sequence>`, as the ESM sends)."""
    iterator = kinesis.get_shard_iterator(
        StreamName=letter.stream_name,
        ShardId=letter.shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=letter.start_sequence,
    )["ShardIterator"]
    end = int(letter.end_sequence)
    out: list[dict[str, Any]] = []
    while iterator:
        resp = kinesis.get_records(ShardIterator=iterator, Limit=page)
        for rec in resp["Records"]:
            if int(rec["SequenceNumber"]) > end:
                return out
            out.append(to_lambda_record(rec, letter.shard_id, letter.stream_arn))
        if out and int(out[-1]["kinesis"]["sequenceNumber"]) == end:
            return out
        if not resp["Records"] and not resp.get("MillisBehindLatest"):
            return out  # caught up with the shard's tip: the end is not there (trimmed or wrong stream)
        iterator = resp.get("NextShardIterator")
    return out


@dataclass
class Preflight:
    records: int
    owned: int
    counters: int
    overtaken: list[str] = field(default_factory=list)  # "pk / sk" of undecidable counters


def preflight(aggregator: Aggregator, letter: DeadLetter, lambda_records: list[dict[str, Any]]) -> Preflight:
    """Read-only: which counters of the range can still be replayed exactly (see module doc)."""
    records, _bad = decode_records({"Records": lambda_records})
    owned = _owned(aggregator, records)
    index = MeterIndex(aggregator.meters.list_all())
    parts = []
    for rec in owned:
        found, _issues = contributions(rec.event, parse_rfc3339(rec.event["time"]), index)
        parts.extend((rec.position, c) for c in found)
    counters = list(pre_aggregate(parts).counters.values())
    items = batch_get(
        aggregator.client, aggregator.usage_table, [{"pk": {"S": c.pk}, "sk": {"S": c.sk}} for c in counters]
    )
    end = encode_position(letter.end_sequence)
    attr = f"ap#{letter.shard_id}"
    overtaken = [f"{i['pk']['S']} / {i['sk']['S']}" for i in items if attr in i and i[attr]["S"] > end]
    return Preflight(len(lambda_records), len(owned), len(counters), sorted(overtaken))


def _owned(aggregator: Aggregator, records: list[StreamRecord]) -> list[StreamRecord]:
    """Records that own their event (first of its key here, and not claimed by another position)."""
    first: dict[str, StreamRecord] = {}
    for rec in records:
        first.setdefault(rec.key, rec)
    claims = {
        i["pk"]["S"]: i.get("claim", {}).get("S")
        for i in batch_get(aggregator.client, aggregator.events_table, [{"pk": {"S": k}} for k in first])
    }
    return [
        rec for key, rec in first.items() if key not in claims or claims[key] == f"{rec.shard}/{rec.position}"
    ]


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


@dataclass
class ReplayResult:
    records: int = 0
    stored: int = 0
    counters_written: int = 0


def replay(
    aggregator: Aggregator,
    records: list[dict[str, Any]],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run the range through the aggregator in order, `batch_size` records per call."""
    result = ReplayResult()
    for chunk in batches(records, batch_size):
        out = aggregator.process({"Records": chunk})
        result.records += len(chunk)
        result.stored += out.stored
        result.counters_written += out.counters_written
        if progress:
            progress(len(chunk))
    return result
