"""The rate function: wired and scheduled; its billing work arrives with a later issue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="meterline-rate")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("rate: nothing to do yet (this function gets its work in a later issue)")
    return {"status": "noop", "function": "rate"}
