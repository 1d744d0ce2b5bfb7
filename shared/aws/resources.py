"""One source of truth for the AWS resources Meterline uses.

The CDK stack (`infra/`) and the local runtime (`local/`) both build their tables, stream,
bucket, topic and queue from these specs, so names, keys, indexes and TTL attributes never
drift between the two places the code runs. Functions only ever learn the physical names
through the environment variables named here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None
    # Non-key attributes copied into the index: None = ALL, () = KEYS_ONLY, else INCLUDE these.
    # Every index write costs write units by the projected size: project only what a reader needs.
    projection: tuple[str, ...] | None = None

    def projection_request(self) -> dict[str, object]:
        """The index's `Projection` as DynamoDB's API takes it."""
        if self.projection is None:
            return {"ProjectionType": "ALL"}
        if not self.projection:
            return {"ProjectionType": "KEYS_ONLY"}
        return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(self.projection)}


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    env_var: str
    local_name: str
    partition_key: str = "pk"
    sort_key: str | None = "sk"
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = None
    purpose: str = ""


@dataclass(frozen=True)
class StreamSpec:
    logical_id: str
    env_var: str
    local_name: str
    local_shards: int


@dataclass(frozen=True)
class NamedSpec:
    logical_id: str
    env_var: str
    local_name: str


# Configuration and catalog entities: meters, customers, API tokens (later features, plans, ...).
CONFIG_TABLE = TableSpec(
    logical_id="ConfigTable",
    env_var="CONFIG_TABLE",
    local_name="meterline-config",
    indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),),
    ttl_attribute="expires_at",
    purpose="entities by id (pk) and by key/lookup (gsi1)",
)

# Dedupe claims, keyed by (source, id), kept for the dedupe window; and the recent stored events as
# compressed blocks (one per aggregator batch and UTC hour), kept for the listing's hot window. Only
# blocks carry index keys: each index holds one small entry per block (see shared/events/blocks.py).
EVENTS_TABLE = TableSpec(
    logical_id="EventsTable",
    env_var="EVENTS_TABLE",
    local_name="meterline-events",
    sort_key=None,
    indexes=(
        Index("blocks_by_time", "tpk", "tsk", projection=("thi", "n", "expires_at")),
        Index("blocks_by_ingested", "ipk", "isk", projection=("ihi", "n", "expires_at")),
        Index("blocks_by_stored", "spk", "ssk", projection=("shi", "n", "expires_at")),
    ),
    ttl_attribute="expires_at",
    purpose="dedupe claims (pk = source/id) and hot event blocks; blocks_by_* find blocks for GET /events",
)

# Pre-aggregated usage counters per meter, subject, level (minute/15 min/hour/day) and dimensions.
USAGE_TABLE = TableSpec(
    logical_id="UsageTable",
    env_var="USAGE_TABLE",
    local_name="meterline-usage",
    ttl_attribute="expires_at",  # only the usage journal's tail items expire (shared/usage/journal.py)
    purpose="usage counters; partition per (meter, subject), sort by level#bucket#dimensions; "
    "the usage journal (per shard)",
)

# Notification events, their per-channel deliveries, dedupe claims, threshold state, dead letters.
# `due` is sparse: only deliveries waiting for an attempt carry its keys (the retry sweep's work list).
NOTIFICATIONS_TABLE = TableSpec(
    logical_id="NotificationsTable",
    env_var="NOTIFICATIONS_TABLE",
    local_name="meterline-notifications",
    indexes=(Index("by_created", "gsi1pk", "gsi1sk"), Index("due", "due_pk", "due_sk")),
    ttl_attribute="expires_at",
    purpose="notification events + deliveries (pk per event), dedupe claims, threshold state; "
    "by_created lists events, due lists deliveries waiting for an attempt",
)

TABLES: tuple[TableSpec, ...] = (CONFIG_TABLE, EVENTS_TABLE, USAGE_TABLE, NOTIFICATIONS_TABLE)

EVENTS_STREAM = StreamSpec(
    logical_id="EventsStream",
    env_var="EVENTS_STREAM",
    local_name="meterline-events",
    local_shards=2,
)

DOCUMENTS_BUCKET = NamedSpec("DocumentsBucket", "DOCUMENTS_BUCKET", "meterline-documents")
# Every stored event for the retention (two years), as gzipped JSON lines: one object per aggregator
# batch and event day under events/year=/month=/day=/; a Glue table over it serves Athena.
EVENTS_ARCHIVE_BUCKET = NamedSpec("EventsArchiveBucket", "EVENTS_ARCHIVE_BUCKET", "meterline-events-archive")
EVENTS_ARCHIVE_PREFIX = "events/"
DOMAIN_TOPIC = NamedSpec("DomainEventsTopic", "DOMAIN_TOPIC_ARN", "meterline-domain-events")
AGGREGATE_DLQ = NamedSpec("AggregateDeadLetterQueue", "AGGREGATE_DLQ_URL", "meterline-aggregate-dlq")
