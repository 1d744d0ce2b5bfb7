"""Concurrent PutRecords against the local moto server must keep every record.

moto's `Shard.put_record` numbers a record as max+1 without a lock, so two concurrent calls can
take the same sequence number and one record silently replaces the other (issue 8: 136 of 20,000
accepted events never reached the stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.moto_server import MotoServer, point_aws_env_at

THREADS, BATCHES, BATCH = 8, 5, 100


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    server = MotoServer()
    url = server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    point_aws_env_at(url)
    client = boto3.client("kinesis", config=Config(max_pool_connections=THREADS))
    try:
        yield client
    finally:
        server.stop()


def _read_all(kinesis: Any, stream: str, shard_id: str) -> list[dict[str, Any]]:
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    iterator, records = it["ShardIterator"], []
    while True:
        resp = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        records += resp["Records"]
        if not resp["Records"]:
            return records
        iterator = resp["NextShardIterator"]


def test_concurrent_put_records_keep_every_record(kinesis: Any) -> None:
    kinesis.create_stream(StreamName="race", ShardCount=1)

    def produce(worker: int) -> list[str]:
        acked = []
        for b in range(BATCHES):
            ids = [f"{worker}-{b}-{i}" for i in range(BATCH)]
            resp = kinesis.put_records(
                StreamName="race", Records=[{"Data": i.encode(), "PartitionKey": i} for i in ids]
            )
            assert resp["FailedRecordCount"] == 0
            acked += ids
        return acked

    with ThreadPoolExecutor(THREADS) as pool:
        acked = [i for ids in pool.map(produce, range(THREADS)) for i in ids]

    records = _read_all(kinesis, "race", "shardId-000000000000")
    stored = [r["Data"].decode() for r in records]
    assert len(acked) == THREADS * BATCHES * BATCH
    assert sorted(stored) == sorted(acked), f"{len(set(acked) - set(stored))} acknowledged records lost"
    sequence = [int(r["SequenceNumber"]) for r in records]
    assert sequence == sorted(set(sequence))  # unique and in shard order


def test_get_records_pages_through_the_shard_in_order(kinesis: Any) -> None:
    kinesis.create_stream(StreamName="pages", ShardCount=1)
    kinesis.put_records(
        StreamName="pages", Records=[{"Data": b"%d" % i, "PartitionKey": "k"} for i in range(25)]
    )
    it = kinesis.get_shard_iterator(
        StreamName="pages", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )
    iterator, pages = it["ShardIterator"], []
    for _ in range(4):
        resp = kinesis.get_records(ShardIterator=iterator, Limit=10)
        pages.append([int(r["Data"]) for r in resp["Records"]])
        iterator = resp["NextShardIterator"]
    assert pages == [list(range(10)), list(range(10, 20)), list(range(20, 25)), []]
    after = kinesis.get_shard_iterator(
        StreamName="pages",
        ShardId="shardId-000000000000",
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber=pages and str(22),
    )
    assert [int(r["Data"]) for r in kinesis.get_records(ShardIterator=after["ShardIterator"])["Records"]] == [
        22,
        23,
        24,
    ]
