"""Runtime settings, read once from the environment.

This is the only place that knows resource names; it never asks "am I local?". Locally the
runtime sets the same variables the CDK stack sets on each Lambda, plus AWS_ENDPOINT_URL,
which botocore itself honours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from shared.aws import resources as r


@dataclass(frozen=True)
class Settings:
    config_table: str
    events_table: str
    usage_table: str
    notifications_table: str
    events_stream: str
    documents_bucket: str
    events_archive_bucket: str
    domain_topic_arn: str
    # Ingest request limits (documented in README "Limits").
    max_events_per_request: int
    max_request_bytes: int
    # How long stored events live in the S3 archive (and so the archive's lifecycle); never below 32
    # days. Dedupe claims and the listing's hot blocks live far shorter (shared/events/blocks.py).
    event_retention_days: int
    # Local runtime only: `http` webhook URLs to loopback are allowed when true.
    allow_insecure_loopback_webhooks: bool
    # Stripe: the secret key itself (local), or the SSM SecureString parameter holding it (AWS); with
    # neither, the Stripe app is not installed. `stripe_api_base` points Stripe's client elsewhere (tests).
    stripe_api_key: str = ""
    stripe_api_key_parameter: str = ""
    stripe_api_base: str = ""
    # Stripe's webhook signing secret (`whsec_...`): itself (local) or its SSM SecureString (AWS).
    stripe_webhook_secret: str = ""
    stripe_webhook_secret_parameter: str = ""
    # Usage write-behind (shared/usage/journal.py): a shard's journaled usage is flushed to the
    # counters once it spans this many seconds of traffic (0: every batch). Counters, meter queries
    # and entitlement access states trail ingestion by at most this plus the batching window.
    usage_flush_seconds: float = 10


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    retention = int(_env("EVENT_RETENTION_DAYS", "730"))
    return Settings(
        config_table=_env(r.CONFIG_TABLE.env_var, r.CONFIG_TABLE.local_name),
        events_table=_env(r.EVENTS_TABLE.env_var, r.EVENTS_TABLE.local_name),
        usage_table=_env(r.USAGE_TABLE.env_var, r.USAGE_TABLE.local_name),
        notifications_table=_env(r.NOTIFICATIONS_TABLE.env_var, r.NOTIFICATIONS_TABLE.local_name),
        events_stream=_env(r.EVENTS_STREAM.env_var, r.EVENTS_STREAM.local_name),
        documents_bucket=_env(r.DOCUMENTS_BUCKET.env_var, r.DOCUMENTS_BUCKET.local_name),
        events_archive_bucket=_env(r.EVENTS_ARCHIVE_BUCKET.env_var, r.EVENTS_ARCHIVE_BUCKET.local_name),
        domain_topic_arn=_env(r.DOMAIN_TOPIC.env_var, ""),
        max_events_per_request=int(_env("MAX_EVENTS_PER_REQUEST", "1000")),
        max_request_bytes=int(_env("MAX_REQUEST_BYTES", str(5 * 1024 * 1024))),
        event_retention_days=max(retention, 32),
        allow_insecure_loopback_webhooks=_env("ALLOW_INSECURE_LOOPBACK_WEBHOOKS") == "true",
        stripe_api_key=_env("STRIPE_API_KEY"),
        stripe_api_key_parameter=_env("STRIPE_API_KEY_PARAMETER"),
        stripe_api_base=_env("STRIPE_API_BASE"),
        stripe_webhook_secret=_env("STRIPE_WEBHOOK_SECRET"),
        stripe_webhook_secret_parameter=_env("STRIPE_WEBHOOK_SECRET_PARAMETER"),
        usage_flush_seconds=max(0.0, float(_env("USAGE_FLUSH_SECONDS", "10"))),
    )
