"""Every API route except ingest: one Lambda behind `/v3/openmeter/{proxy+}`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from functions.api import app as api
from functions.api.app import app
from functions.api.routes import billing as _billing
from functions.api.routes import catalog as _catalog  # noqa: F401  (registers routes)
from functions.api.routes import customers as _customers  # noqa: F401  (registers routes)
from functions.api.routes import entitlements as _entitlements
from functions.api.routes import events as _events  # noqa: F401  (registers routes)
from functions.api.routes import features as _features  # noqa: F401  (registers routes)
from functions.api.routes import llmcost as _llmcost  # noqa: F401  (registers routes)
from functions.api.routes import meters as _meters  # noqa: F401  (registers routes)
from functions.api.routes import notifications as _notifications
from functions.api.routes import tokens as _tokens  # noqa: F401  (registers routes)
from shared.core.observability import lambda_entry

# Domains reshaped into a Router each (the others still register on the app directly).
app.include_router(_billing.router)
app.include_router(_entitlements.router)
app.include_router(_notifications.router)


@lambda_entry("api", correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return api.handle(event, context)
