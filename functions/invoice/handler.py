"""The invoice function (EventBridge schedule): sync gathering invoices, collect due lines into
standard invoices, move invoices through their lifecycle (shared/invoices/service.py `sweep`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from shared import bootstrap
from shared.core.observability import lambda_entry
from shared.core.observability import log as logger
from shared.core.timeutil import Clock


@lambda_entry("invoice", correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bootstrap.new_invocation()
    service = bootstrap.invoices()
    failed_before = service.failures
    done = service.sweep(Clock().now())
    failed = service.failures - failed_before
    logger.info("invoice run", extra={"steps": done, "failed_customers": failed})
    return {"status": "ok", "function": "invoice", "steps": done, "failed_customers": failed}
