"""MeterlineStack: API Gateway -> ingest -> Kinesis -> aggregate -> DynamoDB/SNS, plus schedules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import settings
from infra.constructs.api import MeterlineApi
from infra.constructs.data import DataStores
from infra.constructs.functions import RUNTIME, FunctionSpec, MeterlineFunction, lambda_code
from infra.constructs.monitoring import Alarms
from shared.aws import resources as r
from shared.testclocks.trigger import ADVANCE_REQUESTED

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "Ingest", "functions.ingest.handler.lambda_handler", "POST /v3/openmeter/events", timeout_s=29
    ),
    FunctionSpec("Api", "functions.api.handler.lambda_handler", "/v3/openmeter/* API", timeout_s=29),
    FunctionSpec(
        "Aggregate",
        "functions.aggregate.handler.lambda_handler",
        "Kinesis events -> usage counters",
        memory_mb=1769,  # one full vCPU
        timeout_s=300,
    ),
    FunctionSpec("Rate", "functions.rate.handler.lambda_handler", "Hourly rating", timeout_s=300),
    FunctionSpec("Invoice", "functions.invoice.handler.lambda_handler", "Daily invoicing", timeout_s=900),
    FunctionSpec(
        "Notify", "functions.notify.handler.lambda_handler", "Domain events -> webhooks", timeout_s=60
    ),
)


class LambdaAssetMissingError(FileNotFoundError):
    pass


def resolve_lambda_asset(scope: Construct, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the Lambda code assets are (one directory per function under this root): argument,
    context, env var, then `.build/lambda`."""
    raw = (
        explicit
        or scope.node.try_get_context(settings.LAMBDA_ASSET_CONTEXT_KEY)
        or os.environ.get(settings.LAMBDA_ASSET_ENV_VAR)
        or settings.DEFAULT_LAMBDA_ASSET
    )
    path = Path(raw)
    if not path.is_absolute():
        path = settings.REPO_ROOT / path
    missing = [
        f"{spec.package}/{required}"
        for spec in FUNCTIONS
        for required in ("shared/__init__.py", f"functions/{spec.package}/handler.py")
        if not (path / spec.package / required).is_file()
    ]
    if missing:
        raise LambdaAssetMissingError(
            f"Lambda code assets under {path} are missing or incomplete (no {', '.join(missing)}). "
            "Build it first with `.venv/bin/python -m infra.packaging`, or point "
            f"{settings.LAMBDA_ASSET_ENV_VAR} / context {settings.LAMBDA_ASSET_CONTEXT_KEY} at a built asset."
        )
    return path


class MeterlineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        lambda_asset: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.acknowledgements: list[tuple[Construct, cdk.Acknowledgment]] = []

        self.data = DataStores(self, "Data")
        assets = resolve_lambda_asset(self, lambda_asset)
        # One asset per function: each carries only the distributions its code imports (infra/packaging.py).
        self.functions: dict[str, MeterlineFunction] = {
            spec.id: MeterlineFunction(self, spec, code=lambda_code(str(assets / spec.package)))
            for spec in FUNCTIONS
        }
        fn = {name: f.function for name, f in self.functions.items()}

        self._wire_permissions(fn)

        # Aggregate: one in-order poller per shard (ParallelizationFactor 1): the exactly-once
        # counter logic depends on it. Failed batches are bisected, then parked in the DLQ.
        fn["Aggregate"].add_event_source(
            sources.KinesisEventSource(
                self.data.stream,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=1000,
                max_batching_window=cdk.Duration.seconds(1),
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=10,
                max_record_age=cdk.Duration.days(7),
                parallelization_factor=1,
                on_failure=sources.SqsDlq(self.data.dead_letter_queue),
            )
        )

        self.topic_subscription = self.data.topic.add_subscription(
            subscriptions.LambdaSubscription(fn["Notify"])
        )
        # Test clock advances: the API publishes `test_clock.advance_requested` and the rate function
        # runs the advance at once (outside the API request), rather than at its next schedule. Only
        # that type reaches it; a lost or failed message is covered by the schedule, which resumes
        # every clock still advancing.
        self.clock_subscription = self.data.topic.add_subscription(
            subscriptions.LambdaSubscription(
                fn["Rate"],
                filter_policy={
                    "type": sns.SubscriptionFilter.string_filter(allowlist=[ADVANCE_REQUESTED]),
                },
            )
        )
        # A domain event the notify function failed on 3 times (SNS invokes asynchronously) is parked
        # here instead of dropped; replaying it is safe (dedupe claim per domain event and rule).
        self.notify_failures = sqs.Queue(
            self,
            "NotifyFailedEventsQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        fn["Notify"].configure_async_invoke(
            on_failure=destinations.SqsDestination(self.notify_failures),
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
        )

        self.rate_rule = events.Rule(
            self,
            "RateSchedule",
            description="Entitlement reset sweep and rating, every 5 minutes",
            schedule=events.Schedule.cron(**settings.RATE_SCHEDULE),
            targets=[
                targets.LambdaFunction(fn["Rate"], retry_attempts=2, max_event_age=cdk.Duration.hours(1))
            ],
        )
        self.invoice_rule = events.Rule(
            self,
            "InvoiceSchedule",
            description="Collect due invoice lines and advance invoices, every 15 minutes",
            schedule=events.Schedule.cron(**settings.INVOICE_SCHEDULE),
            targets=[
                targets.LambdaFunction(fn["Invoice"], retry_attempts=2, max_event_age=cdk.Duration.hours(6))
            ],
        )

        # Retry driver: every minute the notify function gets a Scheduled Event and attempts every
        # delivery whose next attempt is due (notifications table, sparse `due` index). No retries
        # of a missed tick: the next tick a minute later does the same work.
        self.notify_retry_rule = events.Rule(
            self,
            "NotifyRetrySchedule",
            description="Attempt notification deliveries whose next retry is due",
            schedule=events.Schedule.rate(cdk.Duration.minutes(settings.NOTIFY_RETRY_RATE_MINUTES)),
            targets=[
                targets.LambdaFunction(fn["Notify"], retry_attempts=0, max_event_age=cdk.Duration.minutes(1))
            ],
        )

        # Idle-shard sweep: a shard's journaled usage is flushed by its next batch once due; this
        # flushes the tail of a shard whose traffic stopped (shared/usage/journal.py).
        self.usage_flush_rule = events.Rule(
            self,
            "UsageFlushSchedule",
            description="Flush journaled usage of shards with no new batches",
            schedule=events.Schedule.rate(cdk.Duration.minutes(1)),
            targets=[
                targets.LambdaFunction(
                    fn["Aggregate"], retry_attempts=0, max_event_age=cdk.Duration.minutes(1)
                )
            ],
        )

        self.api = MeterlineApi(self, "PublicApi", ingest_function=fn["Ingest"], api_function=fn["Api"])

        self.alarms = Alarms(
            self,
            "Alarms",
            dead_letter_queue=self.data.dead_letter_queue,
            aggregate_function=fn["Aggregate"],
            functions=fn,
        )

        cdk.CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the /v3/openmeter API")
        cdk.CfnOutput(self, "DocumentsBucketName", value=self.data.documents_bucket.bucket_name)
        cdk.CfnOutput(self, "EventsArchiveBucketName", value=self.data.events_archive_bucket.bucket_name)
        cdk.CfnOutput(
            self,
            "EventsArchiveGlueTable",
            value=cdk.Fn.join(".", [self.data.archive_database.ref, "events"]),
            description="Athena: SELECT ... FROM <this> WHERE year = ... AND month = ... AND day = ...",
        )
        for spec in r.TABLES:
            cdk.CfnOutput(self, f"{spec.logical_id}Name", value=self.data.table(spec).table_name)

        self._acknowledge_findings()

    # ------------------------------------------------------------------ permissions

    def _wire_permissions(self, fn: dict[str, lambda_.Function]) -> None:
        """Least privilege: each function gets exactly the resources it uses, and their names."""
        data = self.data

        def table(name: str, spec: r.TableSpec, *, write: bool) -> None:
            t = data.table(spec)
            (t.grant_read_write_data if write else t.grant_read_data)(fn[name])
            fn[name].add_environment(spec.env_var, t.table_name)
            if spec.indexes:
                self._ack(
                    self.functions[name],
                    f"AwsSolutions-IAM5[Resource::<{spec.logical_id}.Arn>/index/*]",
                    f"The DynamoDB data grant covers the GSIs of {spec.logical_id} (index/*) so the function "
                    "can Query them; scoped to that one table.",
                )

        def stream_writer(name: str) -> None:
            data.stream.grant(fn[name], "kinesis:PutRecords")
            fn[name].add_environment(r.EVENTS_STREAM.env_var, data.stream.stream_name)

        def documents_writer(name: str) -> None:
            data.documents_bucket.grant_put(fn[name])
            fn[name].add_environment(r.DOCUMENTS_BUCKET.env_var, data.documents_bucket.bucket_name)
            self._ack(
                self.functions[name],
                f"AwsSolutions-IAM5[Resource::<{r.DOCUMENTS_BUCKET.logical_id}.Arn>/*]",
                "Writes documents under generated object keys: put-only access to the objects of this "
                "one bucket.",
            )
            self._ack(
                self.functions[name],
                "AwsSolutions-IAM5[Action::s3:Abort*]",
                "Part of the CDK put grant: lets the SDK abort its own multipart uploads of large documents.",
            )

        def documents_linker(name: str) -> None:
            # Presigned GETs of invoice documents carry the signer's rights: GetObject, invoices/ only.
            fn[name].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"], resources=[data.documents_bucket.arn_for_objects("invoices/*")]
                )
            )
            fn[name].add_environment(r.DOCUMENTS_BUCKET.env_var, data.documents_bucket.bucket_name)
            self._ack(
                self.functions[name],
                f"AwsSolutions-IAM5[Resource::<{r.DOCUMENTS_BUCKET.logical_id}.Arn>/invoices/*]",
                "Signs short-lived download links for invoice documents: s3:GetObject on the objects under "
                "invoices/ of this one bucket, nothing else.",
            )

        def archive_writer(name: str) -> None:
            """Put archive objects; list and read them back only to skip what a replay archived."""
            bucket = data.events_archive_bucket
            objects = bucket.arn_for_objects(f"{r.EVENTS_ARCHIVE_PREFIX}*")
            fn[name].add_to_role_policy(
                iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject"], resources=[objects])
            )
            fn[name].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{r.EVENTS_ARCHIVE_PREFIX}*"]}},
                )
            )
            fn[name].add_environment(r.EVENTS_ARCHIVE_BUCKET.env_var, bucket.bucket_name)
            self._ack(
                self.functions[name],
                f"AwsSolutions-IAM5[Resource::<{r.EVENTS_ARCHIVE_BUCKET.logical_id}.Arn>/"
                f"{r.EVENTS_ARCHIVE_PREFIX}*]",
                "Archive objects are named per batch at runtime (events/year=/month=/day=/...): put and get "
                "on that prefix of this one bucket, no delete.",
            )

        def topic_publisher(name: str) -> None:
            data.topic.grant_publish(fn[name])
            fn[name].add_environment(r.DOMAIN_TOPIC.env_var, data.topic.topic_arn)
            self._ack(
                self.functions[name],
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "Publishing to the KMS-encrypted domain topic needs data keys from its one "
                "customer-managed key.",
            )

        def secret_reader(name: str, env_var: str, parameter: str) -> None:
            fn[name].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["ssm:GetParameter"],
                    resources=[
                        cdk.Stack.of(self).format_arn(
                            service="ssm", resource="parameter", resource_name=parameter.lstrip("/")
                        )
                    ],
                )
            )
            fn[name].add_environment(env_var, parameter)

        def stripe_secret_reader(name: str) -> None:
            secret_reader(name, "STRIPE_API_KEY_PARAMETER", settings.STRIPE_SECRET_PARAMETER)

        # ingest: authenticate (config read), validate, put to Kinesis.
        table("Ingest", r.CONFIG_TABLE, write=False)
        stream_writer("Ingest")

        # api: config CRUD, events list/lookup, usage queries; entitlement changes publish domain events.
        table("Api", r.CONFIG_TABLE, write=True)
        table("Api", r.EVENTS_TABLE, write=True)
        table("Api", r.USAGE_TABLE, write=False)
        table("Api", r.NOTIFICATIONS_TABLE, write=True)  # notification events: rule test, resend
        topic_publisher("Api")
        stripe_secret_reader("Api")  # the Stripe app's secret key (apps, profiles, invoice actions)
        # Stripe's webhook deliveries are verified with its signing secret.
        secret_reader("Api", "STRIPE_WEBHOOK_SECRET_PARAMETER", settings.STRIPE_WEBHOOK_SECRET_PARAMETER)
        documents_linker("Api")  # GET /invoices/{id}: presigned links to the issued invoice's JSON and PDF
        documents_writer("Api")  # approve / invoice-now issue invoices: their documents are written then

        # aggregate: dedupe claims and hot event blocks (events table), the S3 archive, usage
        # counters, entitlement access state (config table), domain events.
        table("Aggregate", r.CONFIG_TABLE, write=True)
        table("Aggregate", r.EVENTS_TABLE, write=True)
        table("Aggregate", r.USAGE_TABLE, write=True)
        archive_writer("Aggregate")
        topic_publisher("Aggregate")

        # rate: the entitlement reset sweep (writes access state, publishes resets) and rating.
        table("Rate", r.CONFIG_TABLE, write=True)
        table("Rate", r.USAGE_TABLE, write=False)
        documents_writer("Rate")
        topic_publisher("Rate")
        stripe_secret_reader("Rate")  # a test clock's advance runs invoicing: Stripe sync
        # invoice: gathering and standard invoices live in the config table (read usage), documents
        # go to S3, invoice.created/updated are published to the domain topic.
        table("Invoice", r.CONFIG_TABLE, write=True)
        table("Invoice", r.USAGE_TABLE, write=False)
        documents_writer("Invoice")
        topic_publisher("Invoice")
        stripe_secret_reader("Invoice")  # invoices of Stripe profiles are synced to Stripe

        # notify: channels and rules come from config; events, deliveries, dedupe claims and
        # threshold state live in the notifications table; SNS channels publish to topics.
        table("Notify", r.CONFIG_TABLE, write=False)
        table("Notify", r.NOTIFICATIONS_TABLE, write=True)
        fn["Notify"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                resources=[
                    cdk.Stack.of(self).format_arn(
                        service="sns", resource="*", arn_format=cdk.ArnFormat.NO_RESOURCE_NAME
                    )
                ],
            )
        )
        self._ack(
            self.functions["Notify"],
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sns:<AWS::Region>:<AWS::AccountId>:*]",
            "SNS notification channels publish to topics their operators name at runtime; publish-only "
            "and scoped to this account and region.",
        )

    # ------------------------------------------------------------------ cdk-nag

    def _ack(self, scope: Construct, rule_id: str, reason: str) -> None:
        ack = cdk.Acknowledgment(id=f"AwsSolutions::{rule_id}", reason=reason)
        cdk.Validations.of(scope).acknowledge(ack)
        self.acknowledgements.append((scope, ack))

    def _acknowledge_findings(self) -> None:
        for function in self.functions.values():
            self._ack(
                function,
                "AwsSolutions-L1",
                f"Runtime pinned to {RUNTIME.name}: the vendored wheels in the code assets are built for it "
                "(infra/packaging.py); upgrade both together.",
            )
            self._ack(
                function,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray active tracing: xray:PutTraceSegments/PutTelemetryRecords support no "
                "resource-level scoping.",
            )
        rest_api = self.api.rest_api
        auth_reason = (
            "Authentication is done in the Lambda functions: OpenMeter-style Bearer API tokens, hashed and "
            "looked up in the config table; there are no Cognito users."
        )
        self._ack(rest_api, "AwsSolutions-APIG4", auth_reason)
        self._ack(rest_api, "AwsSolutions-COG4", auth_reason)
        self._ack(
            rest_api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "Account-level API Gateway logging role, required for access/execution logs; this AWS "
            "managed policy is the one AWS documents for it.",
        )
        self._ack(
            rest_api.deployment_stage,
            "AwsSolutions-APIG3",
            "No WAF web ACL yet: stage throttling and token auth in the functions protect the API; add WAFv2 "
            "when exposed to untrusted high-volume traffic.",
        )
        self._ack(
            self.notify_failures,
            "AwsSolutions-SQS3",
            "This queue is itself a dead-letter destination: the on-failure destination of the notify "
            "function's asynchronous (SNS) invocations.",
        )
        self._ack(
            self.data.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue: the on-failure destination of the aggregate Kinesis "
            "event source mapping.",
        )
