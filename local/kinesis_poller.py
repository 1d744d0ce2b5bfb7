"""A Lambda Kinesis event source mapping, emulated: one poller thread per shard.

Mirrors the ESM settings the CDK stack uses: BatchSize, ReportBatchItemFailures,
BisectBatchOnFunctionError, MaximumRetryAttempts and an SQS on-failure destination.

Delivery guarantee: a shard only moves past a record once the handler acknowledged it or it
was dead-lettered, so nothing is skipped; like Lambda, records may be delivered more than
once (retries), always in shard order.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.handlers import Handler
from local.lambda_context import ACCOUNT_ID, new_context, region

log = logging.getLogger(__name__)

FUNCTION_NAME = "meterline-aggregate"


@dataclass(frozen=True)
class EsmConfig:
    batch_size: int = 1000
    poll_interval: float = 0.15  # idle wait between empty GetRecords; keeps end-to-end latency well < 1 s
    max_retries: int = 10  # MaximumRetryAttempts; -1 = retry forever (until stopped)
    bisect_on_error: bool = True
    retry_backoff: float = 0.1  # first retry delay, doubled per retry, capped at 1 s
    function_name: str = FUNCTION_NAME


@dataclass
class Segment:
    """A run of consecutive records being delivered, with the retries it has used."""

    records: list[dict[str, Any]]
    retries: int = 0


@dataclass
class ShardStats:
    invocations: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    failed_invocations: int = 0
    last_sequence: str | None = None  # checkpoint: everything up to here is acked or dead-lettered


def _epoch(ts: Any) -> float:
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def to_lambda_record(record: dict[str, Any], shard_id: str, stream_arn: str) -> dict[str, Any]:
    """One GetRecords record in the Lambda Kinesis event shape."""
    data = record["Data"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(data if isinstance(data, bytes) else str(data).encode()).decode("ascii"),
            "approximateArrivalTimestamp": _epoch(record["ApproximateArrivalTimestamp"]),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT_ID}:role/local",
        "awsRegion": region(),
        "eventSourceARN": stream_arn,
    }


class Checkpoints:
    """Each shard's checkpoint in a JSON file, so a restarted stack resumes where it stopped.

    Written after the handler acknowledged (or the DLQ took) the records, so a crash in between
    only re-delivers them: the aggregate function is idempotent per event. None = in memory only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        if path is not None and path.exists():
            self._values = {str(k): str(v) for k, v in json.loads(path.read_text("utf-8")).items()}

    def get(self, shard_id: str) -> str | None:
        return self._values.get(shard_id)

    def save(self, shard_id: str, sequence: str) -> None:
        with self._lock:
            self._values[shard_id] = sequence
            if self.path is None:
                return
            # temp file + rename: a kill leaves the old file or the new one, never half of one
            fd, tmp = tempfile.mkstemp(prefix=".checkpoints.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._values, fh)
            os.replace(tmp, self.path)


class MalformedResponse(ValueError):
    """A batchItemFailures list Lambda cannot use: the whole batch counts as failed."""


def first_failed_index(response: Any, records: list[dict[str, Any]]) -> int | None:
    """Index to resume from per ReportBatchItemFailures; None = the whole batch succeeded.

    Like Lambda: a missing, empty or null list (or a non-dict response) is success; an
    identifier that is malformed or not in the batch raises MalformedResponse.
    """
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    if not isinstance(failures, list):
        raise MalformedResponse(f"batchItemFailures is a {type(failures).__name__}")
    positions = {r["kinesis"]["sequenceNumber"]: i for i, r in enumerate(records)}
    lowest = len(records)
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in positions:
            raise MalformedResponse(f"itemIdentifier {ident!r} is not a sequence number of this batch")
        lowest = min(lowest, positions[ident])
    return lowest


class ShardPoller:
    """Reads one shard and drives the handler. `step()` is one poll; `run()` loops it."""

    def __init__(
        self,
        *,
        kinesis: Any,
        sqs: Any,
        handler: Handler,
        stream_name: str,
        stream_arn: str,
        shard_id: str,
        dlq_url: str,
        config: EsmConfig,
        stop: threading.Event,
        context_factory: Callable[[str], Any] = new_context,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.kinesis, self.sqs, self.handler = kinesis, sqs, handler
        self.stream_name, self.stream_arn, self.shard_id = stream_name, stream_arn, shard_id
        self.dlq_url, self.config, self.stop_event = dlq_url, config, stop
        self.context_factory = context_factory
        self.checkpoints = checkpoints or Checkpoints(None)
        self.stats = ShardStats(last_sequence=self.checkpoints.get(shard_id))
        self._iterator: str | None = None
        # monotonic start time of the latest GetRecords that came back empty (see wait_idle)
        self.caught_up_at: float = -1.0
        self.thread: threading.Thread | None = None

    # -- reading ---------------------------------------------------------------------------------

    def _new_iterator(self) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": self.shard_id}
        if self.stats.last_sequence is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"  # the stream is created by us: read it all
        else:
            kwargs.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=self.stats.last_sequence
            )
        return str(self.kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def fetch(self) -> list[dict[str, Any]]:
        started = time.monotonic()
        if self._iterator is None:
            self._iterator = self._new_iterator()
        try:
            resp = self.kinesis.get_records(ShardIterator=self._iterator, Limit=self.config.batch_size)
        except self.kinesis.exceptions.ExpiredIteratorException:
            self._iterator = None  # resume from the checkpoint
            return []
        self._iterator = resp.get("NextShardIterator")
        records = [to_lambda_record(rec, self.shard_id, self.stream_arn) for rec in resp["Records"]]
        if not records:
            self.caught_up_at = started
        return records

    # -- delivering ------------------------------------------------------------------------------

    def step(self) -> int:
        """Fetch one batch and deliver it to completion. Returns the number of records fetched."""
        records = self.fetch()
        if records:
            self.deliver(records)
        return len(records)

    def deliver(self, batch: list[dict[str, Any]]) -> bool:
        """Deliver `batch` until every record is acked or dead-lettered (False if stopped first)."""
        pending: deque[Segment] = deque([Segment(batch)])
        while pending:
            if self.stop_event.is_set():
                return False
            seg = pending[0]
            ok, resume_at = self._invoke(seg.records)
            if ok and resume_at is None:
                self._ack(pending.popleft().records)
                continue
            if ok and resume_at is not None:  # partial failure: checkpoint before the lowest failed record
                self._ack(seg.records[:resume_at])
                seg.records = seg.records[resume_at:]
            elif self.config.bisect_on_error and len(seg.records) > 1:
                # Splitting does not use up retries (as in Lambda); halves run in order.
                mid = len(seg.records) // 2
                pending.popleft()
                pending.extendleft(
                    [Segment(seg.records[mid:], seg.retries), Segment(seg.records[:mid], seg.retries)]
                )
                continue
            if 0 <= self.config.max_retries <= seg.retries:
                self._dead_letter(pending.popleft())
                continue
            seg.retries += 1
            self._backoff(seg.retries)
        return True

    def _invoke(self, records: list[dict[str, Any]]) -> tuple[bool, int | None]:
        """(handler returned, index to resume from). An exception or bad identifier => failed."""
        self.stats.invocations += 1
        try:
            response = self.handler({"Records": records}, self.context_factory(self.config.function_name))
        except Exception:
            self.stats.failed_invocations += 1
            log.exception(
                "%s failed on %d records from %s", self.config.function_name, len(records), self.shard_id
            )
            return False, None
        try:
            return True, first_failed_index(response, records)
        except MalformedResponse as exc:
            self.stats.failed_invocations += 1
            log.warning("%s: %s; whole batch failed", self.config.function_name, exc)
            return False, None

    def _ack(self, records: list[dict[str, Any]]) -> None:
        if records:
            self.stats.acknowledged += len(records)
            self._checkpoint(records[-1]["kinesis"]["sequenceNumber"])

    def _checkpoint(self, sequence: str) -> None:
        self.stats.last_sequence = sequence
        self.checkpoints.save(self.shard_id, sequence)

    def _backoff(self, attempt: int) -> None:
        delay = min(self.config.retry_backoff * 2 ** (attempt - 1), 1.0)
        if delay > 0:
            self.stop_event.wait(delay)

    def _dead_letter(self, seg: Segment) -> None:
        """Send Lambda's on-failure record (metadata only: the records stay in the stream)."""
        first, last = seg.records[0]["kinesis"], seg.records[-1]["kinesis"]

        def iso(epoch: float) -> str:
            return (
                datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            )

        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{self.config.function_name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": seg.retries + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": iso(time.time()),
            "KinesisBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": first["sequenceNumber"],
                "endSequenceNumber": last["sequenceNumber"],
                "approximateArrivalOfFirstRecord": iso(first["approximateArrivalTimestamp"]),
                "approximateArrivalOfLastRecord": iso(last["approximateArrivalTimestamp"]),
                "batchSize": len(seg.records),
                "streamArn": self.stream_arn,
            },
        }
        # If this send fails the exception propagates and the poller retries the batch: never lose it.
        self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(message))
        log.error(
            "%s: retries exhausted, dead-lettered %d records %s..%s from %s",
            self.config.function_name,
            len(seg.records),
            first["sequenceNumber"],
            last["sequenceNumber"],
            self.shard_id,
        )
        self.stats.dead_lettered += len(seg.records)
        self._checkpoint(last["sequenceNumber"])

    # -- thread ----------------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                fetched = self.step()
            except Exception:
                # moto hiccup or DLQ send failure: re-read from the checkpoint after a pause.
                log.exception("kinesis poller for %s failed; resuming from checkpoint", self.shard_id)
                self._iterator = None
                fetched = 0
                self.stop_event.wait(1.0)
            if fetched == 0:
                self.stop_event.wait(self.config.poll_interval)


@dataclass
class KinesisPoller:
    """All shard pollers of one stream -> one function."""

    kinesis: Any
    sqs: Any
    handler: Handler
    stream_name: str
    stream_arn: str
    dlq_url: str
    config: EsmConfig = field(default_factory=EsmConfig)
    context_factory: Callable[[str], Any] = new_context
    checkpoints: Checkpoints = field(default_factory=lambda: Checkpoints(None))
    shards: list[ShardPoller] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        shard_ids = [s["ShardId"] for s in self.kinesis.list_shards(StreamName=self.stream_name)["Shards"]]
        self.shards = [
            ShardPoller(
                kinesis=self.kinesis,
                sqs=self.sqs,
                handler=self.handler,
                stream_name=self.stream_name,
                stream_arn=self.stream_arn,
                shard_id=sid,
                dlq_url=self.dlq_url,
                config=self.config,
                stop=self.stop_event,
                context_factory=self.context_factory,
                checkpoints=self.checkpoints,
            )
            for sid in shard_ids
        ]

    def start(self) -> None:
        for shard in self.shards:
            shard.thread = threading.Thread(target=shard.run, name=f"kinesis-{shard.shard_id}", daemon=True)
            shard.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for shard in self.shards:
            if shard.thread is not None:
                shard.thread.join(timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every shard saw an empty GetRecords that *started* after this call, i.e. all
        records put before the call have been delivered (acked or dead-lettered)."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            if all(s.caught_up_at >= since for s in self.shards):
                return True
            time.sleep(0.01)
        return False

    def drain(self, timeout: float = 5.0) -> None:
        """Synchronous flavour for tests and scripts: raise if the stream is not drained in time."""
        if not self.wait_idle(timeout):
            raise TimeoutError(f"kinesis stream {self.stream_name} not drained within {timeout}s")
