"""The local stack's durable state (local/persistence.py) and the runtime restarted on it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.kinesis_poller import Checkpoints
from local.moto_server import MotoServer, point_aws_env_at
from local.persistence import DurableState, Journal, Request, StateInUse, is_mutating, read_journal, wipe
from local.runtime import LocalRuntime, RuntimeConfig
from tests.e2e.load import Load, create_meters, make_batches, settle, totals


def _environ(method: str = "POST", target: str | None = None, ctype: str = "") -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": "/", "CONTENT_TYPE": ctype}
    if target:
        env["HTTP_X_AMZ_TARGET"] = target
    return env


@pytest.mark.parametrize(
    ("environ", "body", "mutating"),
    [
        (_environ(target="DynamoDB_20120810.PutItem"), b"{}", True),
        (_environ(target="DynamoDB_20120810.TransactWriteItems"), b"{}", True),
        (_environ(target="DynamoDB_20120810.Query"), b"{}", False),
        (_environ(target="DynamoDB_20120810.TransactGetItems"), b"{}", False),
        (_environ(target="Kinesis_20131202.PutRecords"), b"{}", True),
        (_environ(target="Kinesis_20131202.GetRecords"), b"{}", False),
        (_environ(target="Kinesis_20131202.GetShardIterator"), b"{}", False),
        (_environ(target="AmazonSQS.ReceiveMessage"), b"{}", True),  # moves visibility and counts
        (_environ(ctype="application/x-www-form-urlencoded"), b"Action=Publish&TopicArn=x", True),
        (_environ(ctype="application/x-www-form-urlencoded"), b"Action=ListTopics", False),
        (_environ("PUT"), b"object", True),  # S3
        (_environ("DELETE"), b"", True),
        (_environ("GET"), b"", False),
    ],
)
def test_which_requests_are_journaled(environ: dict[str, Any], body: bytes, mutating: bool) -> None:
    assert is_mutating(environ, body) is mutating


def test_a_torn_journal_tail_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.log")
    for n in range(3):
        journal.append(Request("POST", "/", "", {"X-Amz-Target": f"T.{n}"}, b"x" * n))
    journal.sync(3)
    journal.close()
    with open(tmp_path / "j.log", "ab") as fh:
        fh.write(b"\x00\x00\x01\x00garbage")  # a write cut short by a power loss
    assert [r.headers["X-Amz-Target"] for r in read_journal(tmp_path / "j.log")] == ["T.0", "T.1", "T.2"]


def test_one_state_directory_serves_one_stack_and_is_not_wiped_while_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    state = tmp_path / "state"
    server = MotoServer(state_dir=state)
    server.start()
    try:
        with pytest.raises(StateInUse):
            DurableState(state).open(lambda environ, start: [])
        with pytest.raises(StateInUse):
            wipe(state)
    finally:
        server.stop()
    assert wipe(state) and not state.exists()
    assert wipe(state) is False


def test_moto_state_survives_a_lost_process_through_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No snapshot at the end (as after kill -9): the journal alone brings everything back."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")  # restored afterwards; point_aws_env_at sets it
    state = tmp_path / "state"
    server = MotoServer(state_dir=state)
    point_aws_env_at(server.start())
    kinesis, s3, ddb = boto3.client("kinesis"), boto3.client("s3"), boto3.client("dynamodb")
    kinesis.create_stream(StreamName="s", ShardCount=1)
    put = kinesis.put_records(
        StreamName="s", Records=[{"Data": b"r%d" % i, "PartitionKey": "k"} for i in range(5)]
    )
    s3.create_bucket(Bucket="docs")
    s3.put_object(Bucket="docs", Key="a.pdf", Body=b"%PDF")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_item(
        TableName="t",
        Key={"pk": {"S": "a"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    # Simulate the kill: stop serving and drop the directory lock without the closing snapshot.
    assert server.state is not None and server.state.journal is not None
    server.state.journal.close()
    server._server.stop()  # type: ignore[union-attr]
    server.state._lock_fd, fd = -1, server.state._lock_fd
    __import__("os").close(fd)
    server.state = None
    server.stop()

    again = MotoServer(state_dir=state)
    point_aws_env_at(again.start())
    try:
        assert again.state is not None and again.state.replayed >= 5
        kinesis, s3, ddb = boto3.client("kinesis"), boto3.client("s3"), boto3.client("dynamodb")
        it = kinesis.get_shard_iterator(
            StreamName="s", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )
        records = kinesis.get_records(ShardIterator=it["ShardIterator"])["Records"]
        # same records under the same sequence numbers: a persisted poller checkpoint still fits
        assert [(r["Data"], r["SequenceNumber"]) for r in records] == [
            (b"r%d" % i, put["Records"][i]["SequenceNumber"]) for i in range(5)
        ]
        assert s3.get_object(Bucket="docs", Key="a.pdf")["Body"].read() == b"%PDF"
        assert ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "1"}
    finally:
        again.stop()


def test_kinesis_checkpoints_persist(tmp_path: Path) -> None:
    path = tmp_path / "kinesis-checkpoints.json"
    Checkpoints(path).save("shardId-000000000000", "41")
    assert Checkpoints(path).get("shardId-000000000000") == "41"
    assert Checkpoints(path).get("shardId-000000000001") is None
    assert Checkpoints(None).get("shardId-000000000000") is None


def test_runtime_stopped_mid_ingest_and_restarted_counts_every_accepted_event_once(tmp_path: Path) -> None:
    config = RuntimeConfig(
        port=0,
        env_file=tmp_path / "meterline.env",
        state_dir=tmp_path / "state",
        rate_interval=0,
        invoice_interval=0,
        notify_retry_interval=0,
    )
    rt = LocalRuntime(config)
    rt.start()
    # The restart is in this process, on another moto port: services built by the first runtime
    # (and their AWS clients) must be rebuilt against the second, as a new process would.
    try:
        create_meters(rt.api_url, rt.token)
        load = Load(rt.api_url, rt.token, threads=8)
        batches = make_batches("restart", 80, 10)
        stopped = threading.Event()

        def stop_halfway(done: int) -> None:
            if done >= len(batches) // 2 and not stopped.is_set():
                stopped.set()
                rt.stop()

        load.run(batches, on_progress=stop_halfway)
    finally:
        rt.stop()
    rt = LocalRuntime(config)
    rt.start()
    try:
        load.base = rt.api_url
        load.retry_failed()
        expected = load.expected()
        assert expected[1] == 80
        assert settle(rt.api_url, rt.token, expected, timeout=120) == expected
        rt.drain(30)
        assert totals(rt.api_url, rt.token) == expected
    finally:
        rt.stop()
