"""The invoice function: wired and scheduled; its billing work arrives with a later issue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from shared.core.observability import lambda_entry
from shared.core.observability import log as logger


@lambda_entry("invoice", correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("invoice: nothing to do yet (this function gets its work in a later issue)")
    return {"status": "noop", "function": "invoice"}
