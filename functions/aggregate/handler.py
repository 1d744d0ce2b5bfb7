"""Kinesis consumer: store events exactly once and keep usage counters (partial batch responses)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from shared import bootstrap
from shared.bootstrap import aggregator
from shared.core.observability import lambda_entry, metrics

__all__ = ["aggregator", "lambda_handler"]  # `aggregator` (built by shared.bootstrap) is reset by tests


@lambda_entry("aggregate")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A record's own problems (bad time, bad value, a meter that can't be evaluated) are stored as
    # its validation errors inside `process`; what escapes is infrastructure (DynamoDB, Kinesis),
    # which fails the whole batch: Lambda retries (bisecting), and every write is idempotent.
    bootstrap.new_invocation()  # test clocks' times are read fresh per invocation
    if "Records" not in event:
        # The idle-shard sweep (EventBridge, every minute): flush journaled usage that no later
        # batch of its shard will (shared/usage/journal.py).
        swept = aggregator().flush_due()
        metrics.add_metric("CounterWrites", MetricUnit.Count, swept.counters_written)
        return {"flushed": swept.counters_written}
    result = aggregator().process(event)
    metrics.add_metric("EventsStored", MetricUnit.Count, result.stored)
    metrics.add_metric("DuplicatesSkipped", MetricUnit.Count, result.duplicates)
    metrics.add_metric("CounterWrites", MetricUnit.Count, result.counters_written)
    metrics.add_metric("EventsWithValidationErrors", MetricUnit.Count, result.with_issues)
    metrics.add_metric("MetersSkipped", MetricUnit.Count, len(result.meter_errors))
    return {"batchItemFailures": []}
