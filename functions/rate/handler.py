"""The rate function, every 5 minutes: subscriptions advance (phase changes and ends materialise their
entitlements, shared/subscriptions), then the entitlement reset sweep, then test clocks still advancing;
and, on an SNS `test_clock.advance_requested` message, that clock's advance.

The sweep gives every metered entitlement whose usage period has ended its reset (a fresh access
state and an `entitlements.reset` domain event), also for customers with no new usage. It reads
the access states' due index; once an hour it also reconciles every metered entitlement.

Test clocks: an SNS `test_clock.advance_requested` message (the API publishes it when a clock is
advanced; the subscription filters on that type) runs that clock's advance right away; each
scheduled run also resumes every clock still advancing (a lost message, a crashed or paused run).
A run that nears the function's timeout stores its progress and asks for another run.

It also keeps the LLM price database current (shared/llmcost): daily, and on the first run after a
deploy that brings another genai-prices version (or finds the table empty), it appends the catalog's
price changes as new versions; one GetItem per run when nothing is due.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import bootstrap
from shared.bootstrap import entitlements
from shared.core.observability import lambda_entry, metrics
from shared.core.observability import log as logger
from shared.core.timeutil import Clock, parse_rfc3339
from shared.testclocks.trigger import requested_clock_ids


def _top_of_the_hour(event: dict[str, Any]) -> bool:
    """The run in the first 5 minutes of each hour also reconciles every metered entitlement."""
    try:
        return parse_rfc3339(event["time"]).minute < 5
    except (KeyError, ValueError):
        return False


def _time_left(context: Any) -> Callable[[], float] | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: getter() / 1000) if callable(getter) else None


def _advance(clock_ids: list[str], context: Any) -> dict[str, str]:
    """Run these clocks' advances; a paused one asks for another run (the schedule is the backstop)."""
    result = {}
    for clock_id in clock_ids:
        try:
            done = bootstrap.clock_advancer().run(clock_id, _time_left(context))
        except Exception:  # one clock must not stop the others; it stays advancing and is resumed
            logger.exception("test clock advance failed", extra={"test_clock_id": clock_id})
            result[clock_id] = "failed"
            continue
        result[clock_id] = "ready" if done else "paused"
        if not done and (trigger := bootstrap.test_clocks().trigger) is not None:
            trigger.advance_requested(clock_id, Clock().now())
    return result


@lambda_entry("rate", correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bootstrap.new_invocation()
    if event.get("Records"):  # SNS: test clock advances asked for by the API
        messages = [orjson.loads(r["Sns"]["Message"]) for r in event["Records"] if "Sns" in r]
        clocks = _advance(requested_clock_ids(messages), context)
        return {"status": "ok", "function": "rate", "test_clocks": clocks}
    # Subscriptions first: a phase that began materialises its entitlements before the reset sweep.
    advanced = bootstrap.subscriptions().sweep()
    metrics.add_metric("SubscriptionsAdvanced", MetricUnit.Count, advanced)
    reset = entitlements().sweep(reconcile=_top_of_the_hour(event))
    metrics.add_metric("EntitlementsReset", MetricUnit.Count, reset)
    clocks = _advance(bootstrap.test_clocks().advancing_ids(), context)
    prices = bootstrap.llm_prices()
    refreshed = None
    if prices.refresh_due():
        report = prices.refresh()
        refreshed = {"models": report.models, "added": report.added, "closed": report.closed}
        logger.info("llm price catalog refreshed", extra=refreshed)
    logger.info(
        "rate run done (invoices are rated by the invoice function)",
        extra={"entitlements_reset": reset, "subscriptions_advanced": advanced, "test_clocks": clocks},
    )
    return {
        "status": "ok",
        "function": "rate",
        "entitlements_reset": reset,
        "subscriptions_advanced": advanced,
        "test_clocks": clocks,
        "llm_prices": refreshed,
    }
