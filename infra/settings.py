"""Deployment-wide constants for the CDK app and the Lambda packaging.

Resource *shapes* (tables, stream, bucket, topic, queue) live in `shared/aws/resources.py`;
this module only holds what is specific to the AWS deployment.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

STACK_ID = "Meterline"
SERVICE_NAME = "meterline"
METRICS_NAMESPACE = "Meterline"

# Lambda code assets: one directory per function, `<asset root>/<function>/`, holding the
# distributions that function imports plus `shared/` and its own `functions/<function>/` package.
# Resolution order of the root: MeterlineStack(lambda_asset=...), context `meterline:lambdaAsset`,
# env var, default.
LAMBDA_ASSET_ENV_VAR = "METERLINE_LAMBDA_ASSET"
LAMBDA_ASSET_CONTEXT_KEY = "meterline:lambdaAsset"
DEFAULT_LAMBDA_ASSET = REPO_ROOT / ".build" / "lambda"
LAMBDA_REQUIREMENTS = REPO_ROOT / "requirements-lambda.txt"  # the pins (pip constraints)
LAMBDA_SOURCE_PACKAGES = ("functions", "shared")

# The Lambda python3.12 runtime provides boto3 and its dependencies; they are never vendored (a
# vendored copy would shadow the runtime's with a version it was not tested with).
LAMBDA_RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
# Needed without being imported by our code: Powertools' Tracer imports the X-Ray SDK (tracing is
# active on every function).
LAMBDA_INDIRECT_DEPENDENCIES = {"aws-xray-sdk": "Powertools' Tracer (X-Ray active tracing) imports it"}

# What each function's asset carries: the distributions its code imports, at cold start or lazily
# on any of its paths (pinned in requirements-lambda.txt; pip adds their own dependencies).
# `python -m infra.imports` lists what each function imports; tests/infra/test_assets.py fails when
# a function imports a distribution missing here, or one here is no longer imported.
_OBSERVABILITY = ("aws-lambda-powertools", "aws-xray-sdk")
# What billing code imports: request models, rating (iso4217), the Stripe app, invoice PDFs.
_BILLING = (
    "orjson", "pydantic", "python-ulid", "jsonpath-ng", "tzdata",
    "iso4217", "stripe", "reportlab", "babel",
)  # fmt: skip
LAMBDA_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "ingest": (*_OBSERVABILITY, "orjson", "pydantic", "python-ulid"),
    # Every domain; an invoice action (approve, invoice-now) issues invoices, so the PDF too.
    "api": (*_OBSERVABILITY, *_BILLING, "genai-prices"),
    # No pydantic (no request models on the Kinesis path), no stripe, no billing.
    "aggregate": (*_OBSERVABILITY, "orjson", "python-ulid", "jsonpath-ng", "tzdata"),
    # Subscriptions, entitlements, test clocks (whose advance runs invoicing), the LLM price refresh.
    "rate": (*_OBSERVABILITY, *_BILLING, "genai-prices"),
    "invoice": (*_OBSERVABILITY, *_BILLING),
    "notify": (*_OBSERVABILITY, "orjson", "python-ulid", "certifi"),  # certifi: webhook TLS roots
}  # fmt: skip

# The packaging target and the Lambda runtime must agree (wheels are built for this interpreter).
LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_IMPLEMENTATION = "cp"

# EventBridge schedules (UTC). Rating runs every 5 minutes; invoicing every 15 minutes, so an invoice
# is collected within a quarter of an hour after its late-event grace (the profile's collection
# interval, PT1H by default) ends. A run visits only the customers something is due for (a few index
# Queries when nothing is) and stops 2 minutes before its 15-minute timeout: what it left (a month
# start's backlog) is the next run's, a quarter of an hour later.
RATE_SCHEDULE = {"minute": "0/5", "hour": "*"}
INVOICE_SCHEDULE = {"minute": "10/15", "hour": "*"}
# Notification retry sweep: due webhook retries are attempted within a minute of their time.
NOTIFY_RETRY_RATE_MINUTES = 1

# The S3 archive of stored events keeps each object this long (the contract's two years): its
# lifecycle expires them after. (EVENT_RETENTION_DAYS on the functions defaults to the same.)
EVENT_RETENTION_DAYS = 730

# Kinesis: records are kept as long as the event source mapping may retry them (7 days).
STREAM_RETENTION_HOURS = 168

# API Gateway stage throttling (account default is 10 000 rps; keep headroom for other APIs).
API_THROTTLE_RATE = 1000
API_THROTTLE_BURST = 2000

# Stripe: the secret key lives in this SSM SecureString (created by the operator:
# `aws ssm put-parameter --type SecureString --name /meterline/stripe-secret-key --value sk_...`);
# the API function reads it (the Stripe app), and so do the functions that run invoicing (invoice,
# rate: a test clock's advance) to sync invoices to Stripe; while it does not exist, the Stripe app is
# not installed.
STRIPE_SECRET_PARAMETER = "/meterline/stripe-secret-key"
# Stripe's webhook signing secret (`whsec_...`, shown when the endpoint
# `<api>/v3/openmeter/apps/<stripe app id>/stripe/webhook` is added in Stripe's dashboard), in this SSM
# SecureString (`aws ssm put-parameter --type SecureString --name /meterline/stripe-webhook-secret
# --value whsec_...`); the API function reads it to verify deliveries (refused while it does not exist).
STRIPE_WEBHOOK_SECRET_PARAMETER = "/meterline/stripe-webhook-secret"

LOG_RETENTION = "ONE_MONTH"  # name of an aws_logs.RetentionDays member
