"""Every API route except ingest: one Lambda behind `/v3/openmeter/{proxy+}`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from functions.api import app as api
from functions.api.app import app
from functions.api.routes import billing as _billing
from functions.api.routes import catalog as _catalog
from functions.api.routes import charges as _charges
from functions.api.routes import credits as _credits
from functions.api.routes import customers as _customers
from functions.api.routes import entitlements as _entitlements
from functions.api.routes import events as _events
from functions.api.routes import features as _features
from functions.api.routes import invoices as _invoices
from functions.api.routes import llmcost as _llmcost
from functions.api.routes import meters as _meters
from functions.api.routes import notifications as _notifications
from functions.api.routes import subscriptions as _subscriptions
from functions.api.routes import test_clocks as _test_clocks
from functions.api.routes import tokens as _tokens  # noqa: F401  (registers routes)
from shared import bootstrap
from shared.core.observability import lambda_entry

# One Router per domain (tokens still register on the app directly).
app.include_router(_catalog.router)
app.include_router(_credits.router)
app.include_router(_charges.router)
app.include_router(_billing.router)
app.include_router(_entitlements.router)
app.include_router(_notifications.router)
app.include_router(_meters.router)
app.include_router(_features.router)
app.include_router(_customers.router)
app.include_router(_events.router)
app.include_router(_llmcost.router)
app.include_router(_subscriptions.router)
app.include_router(_test_clocks.router)
app.include_router(_invoices.router)


@lambda_entry("api", correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bootstrap.new_invocation()
    return api.handle(event, context)
