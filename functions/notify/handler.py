"""The notify function: domain events (SNS) -> notification events -> signed deliveries; and,
on the every-minute schedule, the retry sweep of deliveries whose next attempt is due."""

from __future__ import annotations

from typing import Any

import orjson
from aws_lambda_powertools.metrics import MetricUnit

from shared.bootstrap import notify_components as components
from shared.core.observability import lambda_entry, metrics
from shared.core.observability import log as logger
from shared.notifications.dispatcher import Dispatcher
from shared.notifications.engine import Engine

__all__ = ["components", "lambda_handler"]  # `components` (built by shared.bootstrap) is reset by tests


def _time_left(context: Any) -> Any:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: getter() / 1000) if callable(getter) else None


@lambda_entry("notify")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config, store, sender = components()
    # Per invocation: the time budget belongs to this invocation (locally they run concurrently).
    engine, dispatcher = (
        Engine(config, store),
        Dispatcher(store, config, sender, time_left=_time_left(context)),
    )
    if event.get("detail-type") == "Scheduled Event":
        due = dispatcher.sweep()
        # An idle sweep (every minute on AWS, every 5 s locally) is not news: debug only.
        (logger.info if due else logger.debug)("retry sweep", extra={"due": due})
        metrics.add_metric("DeliveriesDue", MetricUnit.Count, due)
        return {"status": "swept", "due": due}
    created = 0
    for record in event.get("Records") or []:
        domain = orjson.loads(record["Sns"]["Message"])
        # An exception propagates: Lambda retries the async invoke; the dedupe claim makes that safe.
        events = engine.handle(domain)
        created += len(events)
        dispatcher.deliver([(e, d) for e in events for d in e.deliveries])
    metrics.add_metric("NotificationsCreated", MetricUnit.Count, created)
    return {"status": "ok", "created": created}
