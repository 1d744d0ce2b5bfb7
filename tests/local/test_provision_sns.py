"""Provisioning from shared.aws.resources, and the SNS -> SQS -> notify bridge."""

from __future__ import annotations

import json
import threading
from typing import Any

from local.provision import provision
from local.sns_poller import SnsConfig, SnsPoller
from shared.aws import resources as r


def test_provision_creates_every_spec_and_is_idempotent(aws: dict[str, Any]) -> None:
    first = provision(aws)
    second = provision(aws)
    assert first == second
    ddb = aws["dynamodb"]
    for spec in r.TABLES:
        table = ddb.describe_table(TableName=spec.local_name)["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        assert keys == {spec.partition_key: "HASH", **({spec.sort_key: "RANGE"} if spec.sort_key else {})}
        assert all(a["AttributeType"] == "S" for a in table["AttributeDefinitions"])
        gsis = {g["IndexName"]: g for g in table.get("GlobalSecondaryIndexes", [])}
        assert set(gsis) == {i.name for i in spec.indexes}
        for index in spec.indexes:
            assert gsis[index.name]["Projection"] == index.projection_request()
        ttl = ddb.describe_time_to_live(TableName=spec.local_name)["TimeToLiveDescription"]
        if spec.ttl_attribute:
            assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", spec.ttl_attribute)
        assert first.env[spec.env_var] == spec.local_name
    shards = aws["kinesis"].list_shards(StreamName=r.EVENTS_STREAM.local_name)["Shards"]
    assert len(shards) == r.EVENTS_STREAM.local_shards
    assert first.env[r.EVENTS_STREAM.env_var] == r.EVENTS_STREAM.local_name
    assert first.stream_arn.endswith(f":stream/{r.EVENTS_STREAM.local_name}")
    for bucket in (r.DOCUMENTS_BUCKET, r.EVENTS_ARCHIVE_BUCKET):
        aws["s3"].head_bucket(Bucket=first.env[bucket.env_var])
    assert first.env[r.DOMAIN_TOPIC.env_var].startswith("arn:aws:sns:")
    assert first.env[r.DOMAIN_TOPIC.env_var].endswith(f":{r.DOMAIN_TOPIC.local_name}")
    assert first.env[r.AGGREGATE_DLQ.env_var].endswith(f"/{r.AGGREGATE_DLQ.local_name}")


def _poller(aws: dict[str, Any], handler: Any, **cfg: Any) -> SnsPoller:
    topic = aws["sns"].create_topic(Name="domain")["TopicArn"]
    poller = SnsPoller(
        sns=aws["sns"], sqs=aws["sqs"], topic_arn=topic, handler=handler, config=SnsConfig(**cfg)
    )
    poller.setup()
    return poller


def test_sns_message_reaches_notify_in_lambda_sns_shape(aws: dict[str, Any]) -> None:
    events: list[dict[str, Any]] = []
    poller = _poller(aws, lambda e, c: events.append(e))
    aws["sns"].publish(
        TopicArn=poller.topic_arn,
        Message=json.dumps({"type": "invoice.issued"}),
        Subject="invoice",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "inv"}},
    )
    assert poller.poll_once() == 1
    [event] = events
    [record] = event["Records"]
    assert set(record) == {"EventSource", "EventVersion", "EventSubscriptionArn", "Sns"}
    assert (record["EventSource"], record["EventVersion"]) == ("aws:sns", "1.0")
    assert record["EventSubscriptionArn"] == poller.subscription_arn
    sns = record["Sns"]
    assert sns["Type"] == "Notification" and sns["TopicArn"] == poller.topic_arn
    assert json.loads(sns["Message"]) == {"type": "invoice.issued"} and sns["Subject"] == "invoice"
    assert sns["MessageAttributes"] == {"kind": {"Type": "String", "Value": "inv"}}
    assert sns["MessageId"] and sns["Timestamp"].endswith("Z")
    assert {"SignatureVersion", "Signature", "SigningCertUrl", "UnsubscribeUrl"} <= set(sns)
    assert poller.poll_once() == 0  # deleted after success


def test_failing_notify_is_retried_then_parked(aws: dict[str, Any]) -> None:
    attempts: list[int] = []

    def fail(event: dict[str, Any], context: Any) -> None:
        attempts.append(1)
        raise RuntimeError("webhook down")

    poller = _poller(aws, fail, retry_delay=0, max_attempts=2)
    aws["sns"].publish(TopicArn=poller.topic_arn, Message="m")
    assert poller.poll_once() == 1  # attempt 1 fails: message stays
    assert poller.poll_once() == 1  # attempt 2 fails: parked on the DLQ
    assert poller.poll_once() == 0
    assert len(attempts) == 2
    [parked] = aws["sqs"].receive_message(QueueUrl=poller.dlq_url)["Messages"]
    assert json.loads(parked["Body"])["Message"] == "m"


def test_threaded_sns_poller_delivers(aws: dict[str, Any]) -> None:
    got = threading.Event()
    received: list[dict[str, Any]] = []

    def notify(e: dict[str, Any], c: Any) -> None:
        received.append(e)
        got.set()

    poller = _poller(aws, notify, poll_interval=0.01)
    poller.start()
    try:
        aws["sns"].publish(TopicArn=poller.topic_arn, Message="hello")
        assert got.wait(30)
    finally:
        poller.stop()
    assert received[0]["Records"][0]["Sns"]["Subject"] is None  # published without one
