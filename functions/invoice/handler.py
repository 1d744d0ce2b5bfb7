"""The invoice function (EventBridge schedule): sync gathering invoices, collect due lines into
standard invoices, move invoices through their lifecycle (shared/invoices/service.py `sweep`).

Bounded by the Lambda timeout: the run stops taking customers `STOP_BEFORE_S` before it, and what it
left (customers still due in their indexes, the full sweep's stored cursor) is the next run's."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from shared import bootstrap
from shared.core.observability import lambda_entry
from shared.core.observability import log as logger
from shared.core.timeutil import Clock

# Room for the customer in progress when the run stops (a few Stripe calls at 8 s each at worst).
STOP_BEFORE_S = 120


@lambda_entry("invoice", correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bootstrap.new_invocation()
    service = bootstrap.invoices()
    failed_before = service.failures
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def out_of_time() -> bool:
        return remaining is not None and remaining() < STOP_BEFORE_S * 1000

    done = service.sweep(Clock().now(), out_of_time)
    failed = service.failures - failed_before
    complete = service.complete
    logger.info("invoice run", extra={"steps": done, "failed_customers": failed, "complete": complete})
    return {
        "status": "ok",
        "function": "invoice",
        "steps": done,
        "failed_customers": failed,
        "complete": complete,
    }
