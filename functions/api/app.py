"""The API function's resolver: routing, auth by role, and problem+json for every error."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

import orjson
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from shared.api.problem import (
    PROBLEM_JSON,
    ApiError,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    from_domain,
)
from shared.api.validation import parse_json_body
from shared.auth.tokens import Permission, Role, authorize
from shared.core import errors
from shared.core.observability import log as logger

PREFIX = "/v3/openmeter"
# The caller's role, resolved once per request by `handle` (a context variable: the local runtime
# serves concurrent requests on threads of one process).
_caller_role: ContextVar[Role | None] = ContextVar("caller_role", default=None)
app = APIGatewayRestResolver(strip_prefixes=[PREFIX], serializer=lambda obj: orjson.dumps(obj).decode())


def _trace() -> str:
    ctx = app.current_event.raw_event.get("requestContext") or {}
    return str(ctx.get("requestId") or "local")


def problem(err: ApiError) -> Response:
    return Response(
        status_code=err.status, content_type=PROBLEM_JSON, body=orjson.dumps(err.body(_trace())).decode()
    )


def json_response(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type="application/json", body=orjson.dumps(body).decode())


def no_content() -> Response:
    return Response(status_code=204, content_type="application/json", body="")


def caller_role() -> Role:
    role = _caller_role.get()
    if role is None:  # only `handle` resolves requests; this is a wiring error, not an input
        raise RuntimeError("no authorised caller for this request")
    return role


def require_json_media_type() -> None:
    """415 for a body declared as something other than JSON. Every request body in the contract is
    `application/json`; `+json` types and parameters (`; charset=utf-8`) are JSON too. A body without
    a Content-Type is read as JSON (the harmless guess for API clients)."""
    declared = app.current_event.get_header_value("content-type", case_sensitive=False)
    if not declared:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type [{declared}] is not JSON: send application/json")


def body() -> Any:
    require_json_media_type()
    return parse_json_body(app.current_event.body)


def optional_body() -> Any:
    """The JSON body, or None when the request has none (actions whose body is optional)."""
    raw = app.current_event.body
    if raw is None or raw == "":
        return None
    require_json_media_type()
    return parse_json_body(raw)


# Declared as exploded arrays (`style: form`): `expand=a&expand=b` is one list (passed on joined by
# commas), not a repeat; `expand[]` is how product.md's how-to writes it.
_REPEATABLE = frozenset({"expand", "expand[]"})


def query_params() -> dict[str, str]:
    """The query parameters, one value each. A parameter given twice is a 400 naming it: API Gateway
    keeps only the last value in `queryStringParameters`, and picking one of two contradicting
    filters would be a guess."""
    multi = app.current_event.multi_value_query_string_parameters or {}
    for name, values in multi.items():
        if len(values or ()) > 1 and name not in _REPEATABLE:
            raise errors.InvalidInput.field(
                name, "given more than once: one value expected", "is_string", source="query"
            )
    params = dict(app.current_event.query_string_parameters or {})
    for name in _REPEATABLE & params.keys():
        params[name] = ",".join(multi.get(name) or [params[name]])
    if "sort" in params:
        # API Gateway passes a form-encoded space ('+') through undecoded: `sort=created_at+desc`
        # means `created_at desc`. No sort attribute contains a '+'.
        params["sort"] = params["sort"].replace("+", " ")
    return params


def allowed_methods(path: str) -> list[str]:
    """The methods routed for a path (after the prefix), for a 405's `Allow`."""
    methods = {r.method.upper() for r in app._static_routes if r.path == path}
    methods |= {r.method.upper() for r in app._dynamic_routes if r.rule.fullmatch(path)}
    return sorted(methods)


# Read-only POSTs (queries) are allowed to viewers.
_READ_POSTS = ("/query",)


def required_permission(method: str, path: str) -> Permission:
    route = path.removeprefix(PREFIX)
    if route == "/tokens" or route.startswith("/tokens/"):
        return Permission.TOKENS
    if method in ("GET", "HEAD", "OPTIONS") or (method == "POST" and path.endswith(_READ_POSTS)):
        return Permission.READ
    return Permission.WRITE


@app.exception_handler(ApiError)
def _api_error(err: ApiError) -> Response:
    if err.status >= 500:
        logger.error("request failed", extra={"detail": err.detail})
    return problem(err)


# The one mapping from domain errors to problem+json (shared with the ingest function).
api_error = from_domain


@app.exception_handler(errors.DomainError)
def _domain_error(err: errors.DomainError) -> Response:
    return _api_error(api_error(err))


@app.exception_handler(Exception)
def _unexpected(err: Exception) -> Response:
    # Anything unplanned is a 500 in the contract's shape, never a bare gateway error.
    logger.exception("unhandled error")
    return problem(ApiError("An unexpected error occurred; it has been logged"))


@app.exception_handler(NotFoundError)
def _route_not_found(_err: Exception) -> Response:
    return problem(NotFound(f"No route for {app.current_event.http_method} {app.current_event.path}"))


@app.not_found
def _not_found(_err: Exception) -> Response:
    method, path = app.current_event.http_method, app.current_event.path
    allowed = allowed_methods(path.removeprefix(PREFIX))
    if allowed:
        # The resource exists but not with this method: 405 with `Allow` (RFC 9110 §15.5.6).
        response = problem(MethodNotAllowed(f"{method} is not allowed on {path}; use {', '.join(allowed)}"))
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return problem(NotFound(f"No route for {method} {path}"))


# Authenticated by their own signature, not a bearer token: Stripe's webhook deliveries.
_SIGNED = re.compile(rf"^{PREFIX}/apps/[^/]+/stripe/webhook$")


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("httpMethod") == "POST" and _SIGNED.match(event.get("path", "")):
        return app.resolve(event, context)  # the route verifies the signature; no caller role
    try:
        role = authorize(
            event.get("headers"), required_permission(event.get("httpMethod", "GET"), event.get("path", ""))
        )
    except ApiError as err:
        from shared.api.http import problem_response

        return problem_response(err, event)
    token = _caller_role.set(role)
    try:
        return app.resolve(event, context)
    finally:
        _caller_role.reset(token)
