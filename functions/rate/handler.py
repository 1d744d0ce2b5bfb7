"""The rate function, every 5 minutes: subscriptions advance (phase changes and ends materialise their
entitlements, shared/subscriptions), then the entitlement reset sweep. Rating arrives with a later issue.

The sweep gives every metered entitlement whose usage period has ended its reset (a fresh access
state and an `entitlements.reset` domain event), also for customers with no new usage. It reads
the access states' due index; once an hour it also reconciles every metered entitlement.

It also keeps the LLM price database current (shared/llmcost): daily, and on the first run after a
deploy that brings another genai-prices version (or finds the table empty), it appends the catalog's
price changes as new versions; one GetItem per run when nothing is due.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import bootstrap
from shared.bootstrap import entitlements
from shared.core.observability import lambda_entry, metrics
from shared.core.observability import log as logger
from shared.core.timeutil import parse_rfc3339


def _top_of_the_hour(event: dict[str, Any]) -> bool:
    """The run in the first 5 minutes of each hour also reconciles every metered entitlement."""
    try:
        return parse_rfc3339(event["time"]).minute < 5
    except (KeyError, ValueError):
        return False


@lambda_entry("rate", correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Subscriptions first: a phase that began materialises its entitlements before the reset sweep.
    advanced = bootstrap.subscriptions().sweep()
    metrics.add_metric("SubscriptionsAdvanced", MetricUnit.Count, advanced)
    reset = entitlements().sweep(reconcile=_top_of_the_hour(event))
    metrics.add_metric("EntitlementsReset", MetricUnit.Count, reset)
    prices = bootstrap.llm_prices()
    refreshed = None
    if prices.refresh_due():
        report = prices.refresh()
        refreshed = {"models": report.models, "added": report.added, "closed": report.closed}
        logger.info("llm price catalog refreshed", extra=refreshed)
    logger.info(
        "entitlement reset sweep done; rating: nothing to rate yet (billing is a later issue)",
        extra={"entitlements_reset": reset, "subscriptions_advanced": advanced},
    )
    return {
        "status": "ok",
        "function": "rate",
        "entitlements_reset": reset,
        "subscriptions_advanced": advanced,
        "llm_prices": refreshed,
    }
