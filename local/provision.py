"""Create the stack's resources from `shared.aws.resources` (the specs the CDK stack uses).

Idempotent: running it against an already provisioned endpoint changes nothing and returns
the same environment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.aws import resources as r

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provisioned:
    env: dict[str, str]  # spec.env_var -> physical name / ARN / URL, as the CDK stack sets them
    stream_name: str
    stream_arn: str
    topic_arn: str
    dlq_url: str


def _table_request(spec: r.TableSpec) -> dict[str, Any]:
    attrs: dict[str, str] = {spec.partition_key: "S"}
    keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        attrs[spec.sort_key] = "S"
        keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": spec.local_name,
        "KeySchema": keys,
        "BillingMode": "PAY_PER_REQUEST",
    }
    gsis = []
    for index in spec.indexes:
        attrs[index.partition_key] = "S"
        schema = [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
        if index.sort_key:
            attrs[index.sort_key] = "S"
            schema.append({"AttributeName": index.sort_key, "KeyType": "RANGE"})
        gsis.append({"IndexName": index.name, "KeySchema": schema, "Projection": index.projection_request()})
    if gsis:
        request["GlobalSecondaryIndexes"] = gsis
    request["AttributeDefinitions"] = [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]
    return request


def _ensure_table(ddb: Any, spec: r.TableSpec) -> None:
    try:
        ddb.create_table(**_table_request(spec))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    if spec.ttl_attribute:
        ttl = ddb.describe_time_to_live(TableName=spec.local_name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(
                TableName=spec.local_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )


def _ensure_stream(kinesis: Any, spec: r.StreamSpec) -> str:
    try:
        kinesis.create_stream(StreamName=spec.local_name, ShardCount=spec.local_shards)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    kinesis.get_waiter("stream_exists").wait(StreamName=spec.local_name, WaiterConfig={"Delay": 0.1})
    return str(
        kinesis.describe_stream_summary(StreamName=spec.local_name)["StreamDescriptionSummary"]["StreamARN"]
    )


def _ensure_bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # S3 rejects an explicit us-east-1 constraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def provision(clients: dict[str, Any]) -> Provisioned:
    """`clients` maps service name (dynamodb, kinesis, s3, sns, sqs) to a boto3 client."""
    for spec in r.TABLES:
        _ensure_table(clients["dynamodb"], spec)
    stream_arn = _ensure_stream(clients["kinesis"], r.EVENTS_STREAM)
    for bucket in (r.DOCUMENTS_BUCKET, r.EVENTS_ARCHIVE_BUCKET):
        _ensure_bucket(clients["s3"], bucket.local_name, clients["s3"].meta.region_name)
    topic_arn = str(clients["sns"].create_topic(Name=r.DOMAIN_TOPIC.local_name)["TopicArn"])  # idempotent
    dlq_url = str(clients["sqs"].create_queue(QueueName=r.AGGREGATE_DLQ.local_name)["QueueUrl"])  # idempotent
    env = {spec.env_var: spec.local_name for spec in r.TABLES}
    env[r.EVENTS_STREAM.env_var] = r.EVENTS_STREAM.local_name
    env[r.DOCUMENTS_BUCKET.env_var] = r.DOCUMENTS_BUCKET.local_name
    env[r.EVENTS_ARCHIVE_BUCKET.env_var] = r.EVENTS_ARCHIVE_BUCKET.local_name
    env[r.DOMAIN_TOPIC.env_var] = topic_arn
    env[r.AGGREGATE_DLQ.env_var] = dlq_url
    log.info("provisioned %d tables, stream, bucket, topic and DLQ", len(r.TABLES))
    return Provisioned(
        env=env,
        stream_name=r.EVENTS_STREAM.local_name,
        stream_arn=stream_arn,
        topic_arn=topic_arn,
        dlq_url=dlq_url,
    )
