"""Where a deployed (or local) Meterline keeps its data, found from the CloudFormation stack.

The stack pins every data resource's logical id to its spec in `shared/aws/resources.py`, so a
`DescribeStackResource` per logical id yields the physical names; nothing has to be configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3

from shared.aws import resources as r

LOCAL_ENDPOINT_KEY = "METERLINE_MOTO_URL"


@dataclass(frozen=True)
class Resources:
    config_table: str
    events_table: str
    usage_table: str
    notifications_table: str
    stream_name: str
    dlq_url: str
    topic_arn: str
    events_archive_bucket: str
    endpoint_url: str | None = None  # the local stack's moto server; None = AWS

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(service, endpoint_url=self.endpoint_url)

    def env(self) -> dict[str, str]:
        """The variables the CDK stack sets on the aggregate function (read by `get_settings`)."""
        env = {
            r.CONFIG_TABLE.env_var: self.config_table,
            r.EVENTS_TABLE.env_var: self.events_table,
            r.USAGE_TABLE.env_var: self.usage_table,
            r.NOTIFICATIONS_TABLE.env_var: self.notifications_table,
            r.EVENTS_STREAM.env_var: self.stream_name,
            r.AGGREGATE_DLQ.env_var: self.dlq_url,
            r.DOMAIN_TOPIC.env_var: self.topic_arn,
            r.EVENTS_ARCHIVE_BUCKET.env_var: self.events_archive_bucket,
        }
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


def physical_id(cfn: Any, stack_name: str, logical_id: str) -> str:
    resp = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
    return str(resp["StackResourceDetail"]["PhysicalResourceId"])


def config_table_of_stack(stack_name: str, cfn: Any | None = None) -> str:
    cfn = cfn or boto3.session.Session().client("cloudformation")
    return physical_id(cfn, stack_name, r.CONFIG_TABLE.logical_id)


def from_stack(stack_name: str, cfn: Any | None = None) -> Resources:
    cfn = cfn or boto3.session.Session().client("cloudformation")

    def pid(spec: Any) -> str:
        return physical_id(cfn, stack_name, spec.logical_id)

    return Resources(
        config_table=pid(r.CONFIG_TABLE),
        events_table=pid(r.EVENTS_TABLE),
        usage_table=pid(r.USAGE_TABLE),
        notifications_table=pid(r.NOTIFICATIONS_TABLE),
        stream_name=pid(r.EVENTS_STREAM),
        dlq_url=pid(r.AGGREGATE_DLQ),  # an SQS queue's physical id is its URL
        topic_arn=pid(r.DOMAIN_TOPIC),  # an SNS topic's physical id is its ARN
        events_archive_bucket=pid(r.EVENTS_ARCHIVE_BUCKET),  # an S3 bucket's physical id is its name
    )


def local(env_values: dict[str, str]) -> Resources:
    """The `make run` stack: fixed local names on the moto server named in the env file."""
    endpoint = env_values.get(LOCAL_ENDPOINT_KEY) or os.environ.get(LOCAL_ENDPOINT_KEY)
    if not endpoint:
        raise LookupError(f"{LOCAL_ENDPOINT_KEY} not found: is `make run` up?")
    sqs = boto3.session.Session().client("sqs", endpoint_url=endpoint)
    sns = boto3.session.Session().client("sns", endpoint_url=endpoint)
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    topic = next((t for t in topics if t.endswith(":" + r.DOMAIN_TOPIC.local_name)), "")
    return Resources(
        config_table=r.CONFIG_TABLE.local_name,
        events_table=r.EVENTS_TABLE.local_name,
        usage_table=r.USAGE_TABLE.local_name,
        notifications_table=r.NOTIFICATIONS_TABLE.local_name,
        stream_name=r.EVENTS_STREAM.local_name,
        dlq_url=sqs.get_queue_url(QueueName=r.AGGREGATE_DLQ.local_name)["QueueUrl"],
        topic_arn=topic,
        events_archive_bucket=r.EVENTS_ARCHIVE_BUCKET.local_name,
        endpoint_url=endpoint,
    )
