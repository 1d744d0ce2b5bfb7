"""Kinesis consumer: store events exactly once and keep usage counters (partial batch responses)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.aws import clients
from shared.entitlements.wiring import entitlements
from shared.meters.repository import MeterRepository
from shared.settings import get_settings
from shared.usage.aggregator import Aggregator

logger = Logger(service="meterline-aggregate")
metrics = Metrics(namespace="Meterline", service="aggregate")


@lru_cache(maxsize=1)
def aggregator() -> Aggregator:
    s = get_settings()
    client = clients.dynamodb()
    return Aggregator(
        client,
        s.events_table,
        s.usage_table,
        MeterRepository(s.config_table, client),
        s.event_retention_days,
        # Entitlements on the meters and customers a batch touched get their access state refreshed
        # before the batch is acknowledged: a failure retries the (idempotent) batch.
        after_batch=lambda touched: entitlements().after_batch(touched),
    )


@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A record's own problems (bad time, bad value, a meter that can't be evaluated) are stored as
    # its validation errors inside `process`; what escapes is infrastructure (DynamoDB, Kinesis),
    # which fails the whole batch: Lambda retries (bisecting), and every write is idempotent.
    result = aggregator().process(event)
    metrics.add_metric("EventsStored", MetricUnit.Count, result.stored)
    metrics.add_metric("DuplicatesSkipped", MetricUnit.Count, result.duplicates)
    metrics.add_metric("CounterWrites", MetricUnit.Count, result.counters_written)
    metrics.add_metric("EventsWithValidationErrors", MetricUnit.Count, result.with_issues)
    metrics.add_metric("MetersSkipped", MetricUnit.Count, len(result.meter_errors))
    return {"batchItemFailures": []}
