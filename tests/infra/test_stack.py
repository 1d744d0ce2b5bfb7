"""MeterlineStack: resources, wiring, least privilege and cdk-nag, from ONE offline synth per module."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra import settings
from infra.app import build_app
from infra.stack import FUNCTIONS, MeterlineStack
from shared.aws import resources as r

CDK_JSON = settings.REPO_ROOT / "cdk.json"
FN_SPECS = {spec.id: spec for spec in FUNCTIONS}
DYNAMODB_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}

CONFIG, EVENTS, USAGE = r.CONFIG_TABLE.logical_id, r.EVENTS_TABLE.logical_id, r.USAGE_TABLE.logical_id
NOTIFICATIONS = r.NOTIFICATIONS_TABLE.logical_id
STREAM, BUCKET, TOPIC, DLQ = (
    r.EVENTS_STREAM.logical_id,
    r.DOCUMENTS_BUCKET.logical_id,
    r.DOMAIN_TOPIC.logical_id,
    r.AGGREGATE_DLQ.logical_id,
)
ARCHIVE = r.EVENTS_ARCHIVE_BUCKET.logical_id

# Resource env vars (env var -> logical id) each function must get: exactly these, no more.
EXPECTED_ENV = {
    "Ingest": {r.CONFIG_TABLE.env_var: CONFIG, r.EVENTS_STREAM.env_var: STREAM},
    "Api": {
        r.CONFIG_TABLE.env_var: CONFIG,
        r.EVENTS_TABLE.env_var: EVENTS,
        r.USAGE_TABLE.env_var: USAGE,
        r.NOTIFICATIONS_TABLE.env_var: NOTIFICATIONS,
        r.DOMAIN_TOPIC.env_var: TOPIC,
        r.DOCUMENTS_BUCKET.env_var: BUCKET,  # presigned links to invoice documents
    },
    "Aggregate": {
        r.CONFIG_TABLE.env_var: CONFIG,
        r.EVENTS_TABLE.env_var: EVENTS,
        r.USAGE_TABLE.env_var: USAGE,
        r.DOMAIN_TOPIC.env_var: TOPIC,
        r.EVENTS_ARCHIVE_BUCKET.env_var: ARCHIVE,
    },
    "Rate": {
        r.CONFIG_TABLE.env_var: CONFIG,
        r.USAGE_TABLE.env_var: USAGE,
        r.DOCUMENTS_BUCKET.env_var: BUCKET,
        r.DOMAIN_TOPIC.env_var: TOPIC,
    },
    "Invoice": {
        r.CONFIG_TABLE.env_var: CONFIG,
        r.USAGE_TABLE.env_var: USAGE,
        r.DOCUMENTS_BUCKET.env_var: BUCKET,
        r.DOMAIN_TOPIC.env_var: TOPIC,
    },
    "Notify": {r.CONFIG_TABLE.env_var: CONFIG, r.NOTIFICATIONS_TABLE.env_var: NOTIFICATIONS},
}


@dataclass
class Synth:
    stack: MeterlineStack
    template: Template
    resources: dict[str, dict[str, Any]]
    report: dict[str, Any]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}

    def props(self, logical_id: str) -> dict[str, Any]:
        return self.resources[logical_id]["Properties"]

    def function_id(self, name: str) -> str:
        handler = FN_SPECS[name].handler
        (fid,) = [
            k
            for k, v in self.of_type("AWS::Lambda::Function").items()
            if v["Properties"]["Handler"] == handler
        ]
        return fid

    def only(self, type_: str) -> str:
        (logical_id,) = self.of_type(type_)
        return logical_id

    def statements(self, name: str) -> list[dict[str, Any]]:
        role = self.props(self.function_id(name))["Role"]["Fn::GetAtt"][0]
        return [
            stmt
            for policy in self.of_type("AWS::IAM::Policy").values()
            if {"Ref": role} in policy["Properties"]["Roles"]
            for stmt in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def actions_on(self, name: str, logical_id: str) -> set[str]:
        return {
            action
            for stmt in self.statements(name)
            if logical_id in refs(stmt["Resource"])
            for action in as_list(stmt["Action"])
        }

    def all_actions(self, name: str) -> set[str]:
        return {a for stmt in self.statements(name) for a in as_list(stmt["Action"])}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def refs(value: Any) -> set[str]:
    """Logical ids referenced (Ref / Fn::GetAtt) anywhere in a template fragment; '*' for a bare wildcard."""
    if value == "*":
        return {"*"}
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]}
        if "Fn::GetAtt" in value:
            return {value["Fn::GetAtt"][0]}
        return set().union(*(refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(refs(v) for v in value)) if value else set()
    return set()


@pytest.fixture(scope="module")
def synth(tiny_asset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    context = json.loads(CDK_JSON.read_text())["context"]
    with pytest.MonkeyPatch.context() as mp:
        # Offline and credential-free: synth must not need (or find) any AWS configuration.
        for name in list(os.environ):
            if name.startswith(("AWS_", "CDK_DEFAULT_")):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        app = build_app(context, lambda_asset=str(tiny_asset), outdir=str(tmp_path_factory.mktemp("cdk.out")))
        assembly = app.synth()  # cdk-nag 3 raises ValidationFailed on any unacknowledged finding
    stack = app.node.find_child(settings.STACK_ID)
    assert isinstance(stack, MeterlineStack)
    template = assembly.get_stack_artifact(stack.artifact_id).template
    report = json.loads((Path(assembly.directory) / "validation-report.json").read_text())
    yield Synth(stack, Template.from_json(template), template["Resources"], report)


# ----------------------------------------------------------------------------- data stores


@pytest.mark.parametrize("spec", r.TABLES, ids=lambda s: s.logical_id)
def test_table_matches_spec(synth: Synth, spec: r.TableSpec) -> None:
    res = synth.resources[spec.logical_id]
    assert res["Type"] == "AWS::DynamoDB::GlobalTable"
    assert res["DeletionPolicy"] == "Retain" and res["UpdateReplacePolicy"] == "Retain"
    p = res["Properties"]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert "TableName" not in p  # CloudFormation generates the physical name
    keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    assert p["KeySchema"] == keys
    expected_gsis = [
        {
            "IndexName": ix.name,
            "KeySchema": [{"AttributeName": ix.partition_key, "KeyType": "HASH"}]
            + ([{"AttributeName": ix.sort_key, "KeyType": "RANGE"}] if ix.sort_key else []),
            "Projection": ix.projection_request(),
        }
        for ix in spec.indexes
    ]
    assert p.get("GlobalSecondaryIndexes", []) == expected_gsis
    if spec.ttl_attribute:
        assert p["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in p
    (replica,) = p["Replicas"]
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert replica["DeletionProtectionEnabled"] is True


def test_only_spec_tables_exist(synth: Synth) -> None:
    assert set(synth.of_type("AWS::DynamoDB::GlobalTable")) == {s.logical_id for s in r.TABLES}
    synth.template.resource_count_is("AWS::DynamoDB::Table", 0)


def test_stream_on_demand_and_encrypted(synth: Synth) -> None:
    assert synth.resources[STREAM]["Type"] == "AWS::Kinesis::Stream"
    p = synth.props(STREAM)
    assert p["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert p["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    assert "ShardCount" not in p and "Name" not in p
    assert p["RetentionPeriodHours"] == 7 * 24  # >= the event source mapping's max record age


def test_documents_bucket(synth: Synth) -> None:
    res = synth.resources[BUCKET]
    assert res["DeletionPolicy"] == "Retain"
    p = res["Properties"]
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    logs_bucket = p["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert logs_bucket != BUCKET and synth.resources[logs_bucket]["Type"] == "AWS::S3::Bucket"
    assert synth.resources[logs_bucket]["DeletionPolicy"] == "Retain"


def test_events_table_indexes_are_lean(synth: Synth) -> None:
    """Only blocks are indexed, one entry per block and order, projecting just what the listing
    reads without opening a block (its highest key, event count, expiry): never a copy of events."""
    gsis = synth.props(EVENTS)["GlobalSecondaryIndexes"]
    assert len(gsis) == 3
    for gsi in gsis:
        projection = gsi["Projection"]
        assert projection["ProjectionType"] == "INCLUDE"
        assert len(projection["NonKeyAttributes"]) == 3 and "b" not in projection["NonKeyAttributes"]


def test_events_archive_bucket_keeps_events_for_the_retention(synth: Synth) -> None:
    res = synth.resources[ARCHIVE]
    assert res["Type"] == "AWS::S3::Bucket" and res["DeletionPolicy"] == "Retain"
    p = res["Properties"]
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert p["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert p["LoggingConfiguration"]["LogFilePrefix"] == "events-archive/"
    (rule,) = p["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 730
    assert "Transitions" not in rule  # ~5 KB objects: below what cheaper classes bill at least
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_events_archive_glue_table_uses_partition_projection(synth: Synth) -> None:
    database = synth.only("AWS::Glue::Database")
    table = synth.props(synth.only("AWS::Glue::Table"))
    assert table["DatabaseName"] == {"Ref": database}
    t = table["TableInput"]
    assert t["Name"] == "events" and t["TableType"] == "EXTERNAL_TABLE"
    params = t["Parameters"]
    assert params["projection.enabled"] == "true"
    assert {params[f"projection.{k}.type"] for k in ("year", "month", "day")} == {"integer"}
    assert params["projection.month.digits"] == params["projection.day.digits"] == "2"
    template = json.dumps(params["storage.location.template"])
    assert ARCHIVE in template and "events/year=${year}/month=${month}/day=${day}/" in template
    assert [k["Name"] for k in t["PartitionKeys"]] == ["year", "month", "day"]
    sd = t["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    columns = {c["Name"] for c in sd["Columns"]}
    assert columns >= {"id", "source", "subject", "time", "event", "validation_errors"}
    assert ARCHIVE in json.dumps(sd["Location"])


def _denies_insecure_transport(policy_doc: dict[str, Any]) -> bool:
    return any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy_doc["Statement"]
    )


def test_ssl_enforced_on_buckets_topic_and_queue(synth: Synth) -> None:
    policies = {
        "AWS::S3::BucketPolicy": "Bucket",
        "AWS::SNS::TopicPolicy": "Topics",
        "AWS::SQS::QueuePolicy": "Queues",
    }
    protected: set[str] = set()
    for type_, target_key in policies.items():
        for res in synth.of_type(type_).values():
            if _denies_insecure_transport(res["Properties"]["PolicyDocument"]):
                protected |= refs(res["Properties"][target_key])
    bucket_ids = set(synth.of_type("AWS::S3::Bucket"))
    assert bucket_ids | {TOPIC, DLQ} <= protected


def test_topic_encrypted_with_rotating_cmk(synth: Synth) -> None:
    key = synth.only("AWS::KMS::Key")
    assert synth.props(key)["EnableKeyRotation"] is True
    assert synth.props(TOPIC)["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]}


def test_dlq_encrypted(synth: Synth) -> None:
    assert synth.props(DLQ)["SqsManagedSseEnabled"] is True
    assert synth.props(DLQ)["MessageRetentionPeriod"] == 14 * 24 * 3600


# ----------------------------------------------------------------------------- functions


@pytest.mark.parametrize("name", FN_SPECS)
def test_function_defaults(synth: Synth, name: str) -> None:
    spec = FN_SPECS[name]
    fid = synth.function_id(name)
    p = synth.props(fid)
    assert p["Runtime"] == "python3.12"
    assert p["Architectures"] == ["x86_64"]
    assert p["MemorySize"] == spec.memory_mb
    assert p["Timeout"] == spec.timeout_s
    assert p["TracingConfig"] == {"Mode": "Active"}
    assert p["LoggingConfig"]["LogFormat"] == "JSON"
    assert "Layers" not in p  # the code asset carries the dependencies
    env = p["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == settings.SERVICE_NAME
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == settings.METRICS_NAMESPACE
    log_group = p["LoggingConfig"]["LogGroup"]["Ref"]
    assert synth.props(log_group)["RetentionInDays"] == 30


def test_function_sizes() -> None:
    assert FN_SPECS["Aggregate"].memory_mb == 1769 and FN_SPECS["Aggregate"].timeout_s == 300
    assert FN_SPECS["Api"].timeout_s == 29 and FN_SPECS["Ingest"].timeout_s == 29
    assert {s.memory_mb for n, s in FN_SPECS.items() if n != "Aggregate"} == {1024}


@pytest.mark.parametrize("name", FN_SPECS)
def test_function_gets_exactly_its_resource_names(synth: Synth, name: str) -> None:
    env = synth.props(synth.function_id(name))["Environment"]["Variables"]
    resource_env = {k: v for k, v in env.items() if not k.startswith("POWERTOOLS_")}
    expected: dict[str, Any] = {k: {"Ref": v} for k, v in EXPECTED_ENV[name].items()}
    # SSM parameters are names, not resources of the stack: the Stripe secret key where Stripe is
    # called (the app; invoicing runs in api, invoice and rate), its webhook secret where it is received
    if name in ("Api", "Invoice", "Rate"):
        expected["STRIPE_API_KEY_PARAMETER"] = settings.STRIPE_SECRET_PARAMETER
    if name == "Api":
        expected["STRIPE_WEBHOOK_SECRET_PARAMETER"] = settings.STRIPE_WEBHOOK_SECRET_PARAMETER
    assert resource_env == expected


def test_each_function_has_its_own_code_asset(synth: Synth) -> None:
    functions = synth.of_type("AWS::Lambda::Function")
    keys = {json.dumps(f["Properties"]["Code"]) for f in functions.values()}
    assert len(keys) == len(functions) == len(FUNCTIONS)


@pytest.mark.parametrize("name", FN_SPECS)
def test_function_asset_holds_its_own_package_only(synth: Synth, tiny_asset: Path, name: str) -> None:
    # The staged asset is the function's directory: its handler's package, no other function's.
    key = synth.props(synth.function_id(name))["Code"]["S3Key"]  # "<asset hash>.zip"
    staged = Path(synth.stack.node.root.outdir) / f"asset.{key.removesuffix('.zip')}"
    package = FN_SPECS[name].package
    assert (staged / "functions" / package / "handler.py").is_file()
    assert sorted(p.name for p in (staged / "functions").iterdir() if p.is_dir()) == [package]
    assert (staged / "shared" / "__init__.py").is_file()


# ----------------------------------------------------------------------------- wiring


def test_aggregate_event_source_mapping(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [STREAM, "Arn"]},
            "FunctionName": {"Ref": synth.function_id("Aggregate")},
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 1000,
            "MaximumBatchingWindowInSeconds": 1,
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumRetryAttempts": 10,
            "MaximumRecordAgeInSeconds": 7 * 24 * 3600,
            # Exactly-once counting relies on one in-order processor per shard.
            "ParallelizationFactor": 1,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [DLQ, "Arn"]}}},
        },
    )
    (esm,) = synth.of_type("AWS::Lambda::EventSourceMapping").values()
    assert "TumblingWindowInSeconds" not in esm["Properties"]


@pytest.mark.parametrize(
    ("name", "expression"),
    [("Rate", "cron(0/5 * * * ? *)"), ("Invoice", "cron(10/15 * * * ? *)"), ("Notify", "rate(1 minute)")],
)
def test_schedule_rules(synth: Synth, name: str, expression: str) -> None:
    fid = synth.function_id(name)
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": expression,
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [fid, "Arn"]}})],
        },
    )
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "events.amazonaws.com", "FunctionName": {"Fn::GetAtt": [fid, "Arn"]}},
    )


def test_notify_subscribed_to_topic(synth: Synth) -> None:
    fid = synth.function_id("Notify")
    synth.template.resource_count_is("AWS::SNS::Subscription", 2)  # notify, and rate (test clocks)
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "lambda", "TopicArn": {"Ref": TOPIC}, "Endpoint": {"Fn::GetAtt": [fid, "Arn"]}},
    )
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Principal": "sns.amazonaws.com",
            "SourceArn": {"Ref": TOPIC},
            "FunctionName": {"Fn::GetAtt": [fid, "Arn"]},
        },
    )


def test_rate_subscribed_to_test_clock_advances_only(synth: Synth) -> None:
    """An advance runs in the rate function right away (not at its 5-minute schedule): the topic
    delivers it `test_clock.advance_requested` messages, and only those."""
    fid = synth.function_id("Rate")
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "lambda",
            "TopicArn": {"Ref": TOPIC},
            "Endpoint": {"Fn::GetAtt": [fid, "Arn"]},
            "FilterPolicy": {"type": ["test_clock.advance_requested"]},
        },
    )
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Principal": "sns.amazonaws.com",
            "SourceArn": {"Ref": TOPIC},
            "FunctionName": {"Fn::GetAtt": [fid, "Arn"]},
        },
    )
    # The API publishes the request (it already publishes domain events), nothing more.
    assert synth.actions_on("Api", TOPIC) == {"sns:Publish"}


def _resource_paths(synth: Synth) -> dict[str, str]:
    parts = {k: v["Properties"] for k, v in synth.of_type("AWS::ApiGateway::Resource").items()}

    def path(rid: str) -> str:
        parent = parts[rid]["ParentId"]
        prefix = path(parent["Ref"]) if "Ref" in parent else ""
        return f"{prefix}/{parts[rid]['PathPart']}"

    return {rid: path(rid) for rid in parts}


def test_api_routes(synth: Synth) -> None:
    api = synth.only("AWS::ApiGateway::RestApi")
    assert synth.props(api)["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    paths = _resource_paths(synth)
    validator = synth.only("AWS::ApiGateway::RequestValidator")
    assert synth.props(validator) | {"RestApiId": None} == {
        "RestApiId": None,
        "ValidateRequestBody": True,
        "ValidateRequestParameters": True,
    }
    routes = {}
    for method in synth.of_type("AWS::ApiGateway::Method").values():
        p = method["Properties"]
        assert p["AuthorizationType"] == "NONE"  # Bearer tokens are checked in the functions
        assert p["Integration"]["Type"] == "AWS_PROXY"
        assert p["RequestValidatorId"] == {"Ref": validator}
        (fid,) = refs(p["Integration"]["Uri"]) - {"AWS::Partition", "AWS::Region"}
        routes[(p["HttpMethod"], paths[p["ResourceId"]["Ref"]])] = fid
    assert routes == {
        ("POST", "/v3/openmeter/events"): synth.function_id("Ingest"),
        ("ANY", "/v3/openmeter/events"): synth.function_id("Api"),
        ("ANY", "/v3/openmeter/{proxy+}"): synth.function_id("Api"),
    }


def test_api_stage_logging_and_throttling(synth: Synth) -> None:
    p = synth.props(synth.only("AWS::ApiGateway::Stage"))
    assert "$context.requestId" in p["AccessLogSetting"]["Format"]
    assert refs(p["AccessLogSetting"]["DestinationArn"]) & set(synth.of_type("AWS::Logs::LogGroup"))
    (settings_,) = p["MethodSettings"]
    assert settings_["ThrottlingRateLimit"] == settings.API_THROTTLE_RATE
    assert settings_["ThrottlingBurstLimit"] == settings.API_THROTTLE_BURST
    assert settings_["LoggingLevel"] == "ERROR"
    assert settings_["DataTraceEnabled"] is False  # would log bearer tokens
    assert p["TracingEnabled"] is True


def test_alarms(synth: Synth) -> None:
    alarms = [a["Properties"] for a in synth.of_type("AWS::CloudWatch::Alarm").values()]

    def find(metric: str, dim_ref: str) -> dict[str, Any]:
        (alarm,) = [a for a in alarms if a["MetricName"] == metric and dim_ref in refs(a["Dimensions"])]
        return alarm

    dlq = find("ApproximateNumberOfMessagesVisible", DLQ)
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    age = find("IteratorAge", synth.function_id("Aggregate"))
    assert (age["Threshold"], age["Statistic"], age["ComparisonOperator"]) == (
        60_000,
        "Maximum",
        "GreaterThanThreshold",
    )
    for name in FN_SPECS:
        errors = find("Errors", synth.function_id(name))
        assert (errors["Threshold"], errors["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert len(alarms) == 2 + len(FN_SPECS)


# ----------------------------------------------------------------------------- least privilege


def test_ingest_permissions(synth: Synth) -> None:
    assert synth.actions_on("Ingest", STREAM) == {"kinesis:PutRecords"}
    assert not synth.actions_on("Ingest", CONFIG) & DYNAMODB_WRITES
    assert "dynamodb:GetItem" in synth.actions_on("Ingest", CONFIG)
    assert not synth.actions_on("Ingest", USAGE) and not synth.actions_on("Ingest", EVENTS)
    assert not {a for a in synth.all_actions("Ingest") if a.split(":")[0] in ("s3", "sns", "sqs")}


def test_api_permissions(synth: Synth) -> None:
    assert synth.actions_on("Api", CONFIG) >= DYNAMODB_WRITES
    assert synth.actions_on("Api", EVENTS) >= DYNAMODB_WRITES
    usage = synth.actions_on("Api", USAGE)
    assert "dynamodb:Query" in usage and not usage & DYNAMODB_WRITES
    assert synth.actions_on("Api", TOPIC) == {"sns:Publish"}  # entitlement changes emit domain events
    assert not {a for a in synth.all_actions("Api") if a.startswith("kinesis:")}
    # S3: read invoice documents (the presigned links carry the API's rights) and write them (approve
    # and invoice-now issue invoices); no listing, no deleting.
    s3 = {a for a in synth.all_actions("Api") if a.startswith("s3:")}
    assert "s3:GetObject" in s3 and "s3:PutObject" in s3
    assert not {a for a in s3 if a.startswith(("s3:List", "s3:Delete"))}
    # the Stripe secret key and webhook signing secret: two parameters, read-only
    assert {a for a in synth.all_actions("Api") if a.startswith("ssm:")} == {"ssm:GetParameter"}
    assert ssm_parameters(synth, "Api") == {"stripe-secret-key", "stripe-webhook-secret"}


@pytest.mark.parametrize("name", ["Invoice", "Rate"])
def test_invoicing_functions_read_only_the_stripe_secret_key(synth: Synth, name: str) -> None:
    assert {a for a in synth.all_actions(name) if a.startswith("ssm:")} == {"ssm:GetParameter"}
    assert ssm_parameters(synth, name) == {"stripe-secret-key"}


def ssm_parameters(synth: Synth, name: str) -> set[str]:
    """The SSM parameter names (after `parameter/meterline/`) the function may read."""
    found = re.findall(r"parameter/meterline/([a-z-]+)", json.dumps(synth.statements(name)))
    return set(found)


def test_aggregate_permissions(synth: Synth) -> None:
    assert synth.actions_on("Aggregate", EVENTS) >= DYNAMODB_WRITES
    assert synth.actions_on("Aggregate", USAGE) >= DYNAMODB_WRITES
    assert synth.actions_on("Aggregate", CONFIG) >= DYNAMODB_WRITES  # entitlement access state
    assert synth.actions_on("Aggregate", TOPIC) == {"sns:Publish"}
    assert "sqs:SendMessage" in synth.actions_on("Aggregate", DLQ)
    stream = synth.actions_on("Aggregate", STREAM)
    assert {"kinesis:GetRecords", "kinesis:GetShardIterator"} <= stream and "kinesis:PutRecords" not in stream
    assert not synth.actions_on("Aggregate", BUCKET)
    # The archive: put, and read back only for replays; never delete. Objects under events/ only.
    assert synth.actions_on("Aggregate", ARCHIVE) == {"s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    for stmt in synth.statements("Aggregate"):
        if ARCHIVE in refs(stmt["Resource"]):
            assert "events/*" in json.dumps(stmt), stmt
    for name in FN_SPECS.keys() - {"Aggregate"}:
        assert not synth.actions_on(name, ARCHIVE), name


@pytest.mark.parametrize("name", ["Rate", "Invoice"])
def test_rate_and_invoice_permissions(synth: Synth, name: str) -> None:
    s3_actions = synth.actions_on(name, BUCKET)
    assert "s3:PutObject" in s3_actions
    assert not s3_actions & {"s3:GetObject*", "s3:DeleteObject*", "s3:List*"}
    for table in (CONFIG, USAGE):
        assert "dynamodb:Query" in synth.actions_on(name, table)
    assert not synth.actions_on(name, USAGE) & DYNAMODB_WRITES
    # Both write the config table and publish: the rate function the entitlement resets (and a test
    # clock's invoices), the invoice function the invoices and their invoice.created/updated events.
    assert synth.actions_on(name, CONFIG) & DYNAMODB_WRITES
    assert synth.actions_on(name, TOPIC) == {"sns:Publish"}
    assert not synth.actions_on(name, EVENTS)
    assert not {a for a in synth.all_actions(name) if a.startswith("kinesis:")}


def test_api_reads_only_invoice_documents(synth: Synth) -> None:
    reads = [s for s in synth.statements("Api") if "s3:GetObject" in as_list(s["Action"])]
    (stmt,) = reads  # the read grant is its own statement, scoped to invoices/
    assert as_list(stmt["Action"]) == ["s3:GetObject"]
    assert refs(stmt["Resource"]) == {BUCKET}
    assert json.dumps(stmt["Resource"]).endswith('"/invoices/*"]]}')


def test_notify_permissions(synth: Synth) -> None:
    assert not {a for a in synth.all_actions("Notify") if a.startswith(("kinesis:", "s3:"))}
    # SQS only to park failed invocations, on that one queue.
    sqs_stmts = [
        s for s in synth.statements("Notify") if any(a.startswith("sqs:") for a in as_list(s["Action"]))
    ]
    (failures,) = {q for s in sqs_stmts for q in refs(s["Resource"])}
    assert failures.startswith("NotifyFailedEventsQueue") and failures != DLQ
    assert not synth.actions_on("Notify", CONFIG) & DYNAMODB_WRITES
    assert synth.actions_on("Notify", NOTIFICATIONS) >= DYNAMODB_WRITES | {"dynamodb:Query"}
    assert not synth.actions_on("Notify", USAGE) and not synth.actions_on("Notify", EVENTS)
    # SNS channels: publish only, to topics of this account and region (never sns:* or another account).
    sns = [s for s in synth.statements("Notify") if any(a.startswith("sns:") for a in as_list(s["Action"]))]
    (stmt,) = sns
    assert as_list(stmt["Action"]) == ["sns:Publish"]
    arn = json.dumps(stmt["Resource"])
    assert '"AWS::AccountId"' in arn and '"AWS::Region"' in arn and arn.endswith(':*"]]}')


def test_notify_retry_sweep_schedule(synth: Synth) -> None:
    fid = synth.function_id("Notify")
    rules = [
        p["Properties"]
        for p in synth.of_type("AWS::Events::Rule").values()
        if p["Properties"].get("ScheduleExpression") == "rate(1 minute)"
        and p["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fid, "Arn"]}
    ]
    (rule,) = rules
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [fid, "Arn"]}
    # A missed tick is not retried: the next one a minute later does the same work.
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}


def test_notify_failed_domain_events_are_parked_not_dropped(synth: Synth) -> None:
    fid = synth.function_id("Notify")
    (config,) = synth.of_type("AWS::Lambda::EventInvokeConfig").values()
    p = config["Properties"]
    assert p["FunctionName"] == {"Ref": fid}
    assert (p["MaximumRetryAttempts"], p["MaximumEventAgeInSeconds"]) == (2, 6 * 3600)
    (queue,) = refs(p["DestinationConfig"]["OnFailure"]["Destination"])
    assert synth.resources[queue]["Type"] == "AWS::SQS::Queue" and queue != DLQ
    assert synth.props(queue)["SqsManagedSseEnabled"] is True
    assert "sqs:SendMessage" in synth.actions_on("Notify", queue)
    policies = [q["Properties"] for q in synth.of_type("AWS::SQS::QueuePolicy").values()]
    assert any(
        queue in refs(p["Queues"]) and _denies_insecure_transport(p["PolicyDocument"]) for p in policies
    )


def test_api_can_write_notification_events(synth: Synth) -> None:
    assert synth.actions_on("Api", NOTIFICATIONS) >= DYNAMODB_WRITES
    assert not {a for a in synth.all_actions("Api") if a.startswith("sns:") and a != "sns:Publish"}


@pytest.mark.parametrize("name", FN_SPECS)
def test_no_broad_wildcards(synth: Synth, name: str) -> None:
    own_log_group = synth.props(synth.function_id(name))["LoggingConfig"]["LogGroup"]["Ref"]
    for stmt in synth.statements(name):
        actions = as_list(stmt["Action"])
        assert all(a != "*" and not a.endswith(":*") for a in actions), stmt
        if "*" in refs(stmt["Resource"]):
            assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, stmt
        if any(a.startswith("logs:") for a in actions):
            assert refs(stmt["Resource"]) == {own_log_group}
    role = synth.props(synth.function_id(name))["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in synth.props(role)


# ----------------------------------------------------------------------------- cdk-nag


def _nag_report(synth: Synth) -> dict[str, Any]:
    (report,) = [p for p in synth.report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    return report


def test_cdk_nag_has_no_unacknowledged_findings(synth: Synth) -> None:
    report = _nag_report(synth)
    assert report["conclusion"] == "success"
    assert report["violations"] == []
    assert report["suppressedViolations"], "cdk-nag ran but reported nothing: is the plugin wired?"


def test_cdk_nag_acknowledgements_have_reasons(synth: Synth) -> None:
    assert synth.stack.acknowledgements
    for _, ack in synth.stack.acknowledgements:
        assert len(ack.reason.strip()) >= 20, ack.id
    for suppressed in _nag_report(synth)["suppressedViolations"]:
        assert len(suppressed["reason"].strip()) >= 20, suppressed["ruleName"]


def test_cdk_nag_acknowledgements_are_all_used(synth: Synth) -> None:
    used = {(s["acknowledgedAt"], s["acknowledgedId"]) for s in _nag_report(synth)["suppressedViolations"]}
    declared = {(scope.node.path, ack.id) for scope, ack in synth.stack.acknowledgements}
    assert declared - used == set(), "stale acknowledgements"


def test_iam5_acknowledgements_are_scoped(synth: Synth) -> None:
    # Wildcard findings are acknowledged per function, never stack-wide.
    for scope, ack in synth.stack.acknowledgements:
        if "IAM5" in ack.id:
            assert scope.node.path.split("/")[1] in FN_SPECS, (scope.node.path, ack.id)


def test_idle_usage_flush_schedule(synth: Synth) -> None:
    """The aggregate function flushes journaled usage of quiet shards every minute
    (shared/usage/journal.py); a missed tick is not retried: the next one does the same work."""
    fid = synth.function_id("Aggregate")
    (rule,) = [
        p["Properties"]
        for p in synth.of_type("AWS::Events::Rule").values()
        if p["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [fid, "Arn"]}
    ]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
