"""Publish events to Kinesis with PutRecords, within its limits, retrying what it rejects.

A request is acknowledged only after every record is in the stream; records Kinesis reports
as failed (throttling, internal errors) are retried with backoff. If some still fail, the caller
answers 503 and the client resends: records that did land are deduplicated downstream.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import clients

MAX_RECORDS_PER_CALL = 500  # PutRecords hard limit
MAX_BYTES_PER_CALL = 5 * 1024 * 1024  # classic 5 MiB per request (data + partition keys)
MAX_RECORD_BYTES = 1024 * 1024  # classic 1 MiB per record


class PublishError(Exception):
    """Some records could not be written after all retries."""


def partition_key(source: str, event_id: str) -> str:
    # Every copy of an event (same source and id) lands on the same shard, so the aggregator
    # sees duplicates in order on one shard: dedupe needs no cross-shard coordination.
    return hashlib.sha1(f"{source}\x1f{event_id}".encode()).hexdigest()


def chunk_records(records: Sequence[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    chunks: list[list[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    size = 0
    for key, data in records:
        rec_size = len(data) + len(key.encode())
        if rec_size > MAX_RECORD_BYTES:
            raise ValueError(
                f"record of {rec_size} bytes exceeds the {MAX_RECORD_BYTES} byte Kinesis record limit"
            )
        if current and (len(current) == MAX_RECORDS_PER_CALL or size + rec_size > MAX_BYTES_PER_CALL):
            chunks.append(current)
            current, size = [], 0
        current.append((key, data))
        size += rec_size
    if current:
        chunks.append(current)
    return chunks


class KinesisPublisher:
    def __init__(
        self,
        stream_name: str,
        client: Any | None = None,
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stream_name = stream_name
        self._client = client
        self.max_attempts = max_attempts
        self._sleep = sleep

    @property
    def client(self) -> Any:
        return self._client or clients.kinesis()

    def publish(self, records: Sequence[tuple[str, bytes]]) -> None:
        for chunk in chunk_records(records):
            self._put_chunk(chunk)

    def _put_chunk(self, chunk: list[tuple[str, bytes]]) -> None:
        pending = chunk
        for attempt in range(self.max_attempts):
            try:
                resp = self.client.put_records(
                    StreamName=self.stream_name,
                    Records=[{"PartitionKey": key, "Data": data} for key, data in pending],
                )
            except (BotoCoreError, ClientError):  # the whole call failed (after botocore's own retries)
                failed = [{"ErrorCode": "CallFailed"}] * len(pending)
                resp = {"FailedRecordCount": len(pending), "Records": failed}
            if not resp.get("FailedRecordCount"):
                return
            # Results are positional: keep exactly the entries that carry an ErrorCode.
            pending = [rec for rec, res in zip(pending, resp["Records"], strict=True) if res.get("ErrorCode")]
            if not pending:
                return
            if attempt + 1 < self.max_attempts:  # no pointless wait before giving up
                self._sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random() / 2))
        raise PublishError(
            f"{len(pending)} records were not accepted by Kinesis after {self.max_attempts} attempts"
        )
