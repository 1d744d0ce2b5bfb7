"""Kinesis consumer: store events exactly once and keep usage counters (partial batch responses).
Also the target of the idle-shard sweep schedule (shared/usage/journal.py)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from shared import bootstrap
from shared.bootstrap import aggregator
from shared.core.observability import lambda_entry, metrics

__all__ = ["aggregator", "lambda_handler"]  # `aggregator` (built by shared.bootstrap) is reset by tests

# The schedule fires every minute, EventBridge's finest; within an invocation the sweep runs every
# SWEEP_EVERY seconds for SWEEP_FOR, so the last events of a burst wait at most USAGE_FLUSH_SECONDS
# + SWEEP_EVERY, not a minute more. Overlapping sweeps are safe (journal.py), only wasteful.
SWEEP_EVERY = 5.0
SWEEP_FOR = 50.0
sleep, monotonic = time.sleep, time.monotonic  # module seams: tests record pauses instead


def _sweep(context: Any) -> int:
    started = monotonic()
    written = 0
    while True:
        written += aggregator().flush_due().counters_written
        # No Lambda clock (the local scheduler, tests): one pass; the local schedule is every 5 s.
        clock = getattr(context, "get_remaining_time_in_millis", None)
        remaining = clock() / 1000 if clock is not None else 0.0
        elapsed = monotonic() - started
        if elapsed + SWEEP_EVERY > SWEEP_FOR or remaining < SWEEP_EVERY + 10:
            return written
        sleep(SWEEP_EVERY)


@lambda_entry("aggregate")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A record's own problems (bad time, bad value, a meter that can't be evaluated) are stored as
    # its validation errors inside `process`; what escapes is infrastructure (DynamoDB, Kinesis),
    # which fails the whole batch: Lambda retries (bisecting), and every write is idempotent.
    bootstrap.new_invocation()  # test clocks' times are read fresh per invocation
    if "Records" not in event:
        # The idle-shard sweep (EventBridge): flush journaled usage no later batch of its shard will.
        written = _sweep(context)
        metrics.add_metric("CounterWrites", MetricUnit.Count, written)
        return {"counter_writes": written}
    result = aggregator().process(event)
    metrics.add_metric("EventsStored", MetricUnit.Count, result.stored)
    metrics.add_metric("DuplicatesSkipped", MetricUnit.Count, result.duplicates)
    metrics.add_metric("CounterWrites", MetricUnit.Count, result.counters_written)
    metrics.add_metric("EventsWithValidationErrors", MetricUnit.Count, result.with_issues)
    metrics.add_metric("MetersSkipped", MetricUnit.Count, len(result.meter_errors))
    return {"batchItemFailures": []}
