"""The rate function, every 5 minutes: the entitlement reset sweep. Rating arrives with a later issue.

The sweep gives every metered entitlement whose usage period has ended its reset (a fresh access
state and an `entitlements.reset` domain event), also for customers with no new usage.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from shared.entitlements.wiring import entitlements

logger = Logger(service="meterline-rate")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    reset = entitlements().sweep()
    logger.info(
        "entitlement reset sweep done; rating: nothing to rate yet (billing is a later issue)",
        extra={"entitlements_reset": reset},
    )
    return {"status": "ok", "function": "rate", "entitlements_reset": reset}
