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

# Lambda code asset: a directory with the vendored dependencies plus `functions/` and `shared/`.
# Resolution order: MeterlineStack(lambda_asset=...), context `meterline:lambdaAsset`, env var, default.
LAMBDA_ASSET_ENV_VAR = "METERLINE_LAMBDA_ASSET"
LAMBDA_ASSET_CONTEXT_KEY = "meterline:lambdaAsset"
DEFAULT_LAMBDA_ASSET = REPO_ROOT / ".build" / "lambda"
LAMBDA_REQUIREMENTS = REPO_ROOT / "requirements-lambda.txt"
LAMBDA_SOURCE_PACKAGES = ("functions", "shared")

# The packaging target and the Lambda runtime must agree (wheels are built for this interpreter).
LAMBDA_PYTHON_VERSION = "3.12"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_IMPLEMENTATION = "cp"

# EventBridge schedules (UTC). Rating runs a few minutes past each hour so late events of the
# previous hour are in; invoicing runs daily after the midnight rating run.
RATE_SCHEDULE = {"minute": "0/5", "hour": "*"}
INVOICE_SCHEDULE = {"minute": "20", "hour": "0"}
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
# the API function reads it; while it does not exist, the Stripe app is not installed.
STRIPE_SECRET_PARAMETER = "/meterline/stripe-secret-key"

LOG_RETENTION = "ONE_MONTH"  # name of an aws_logs.RetentionDays member
