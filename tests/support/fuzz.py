"""Contract fuzzing in-process: schemathesis drives the real handlers through a WSGI adapter.

The adapter does what the local front (local/http_front.py) does for one HTTP request: route it
like the CDK stack, build API Gateway's REST proxy event, run the Lambda handler and write its
proxy response back. A handler that raises is a 502, as API Gateway answers.

Only operations the server implements are fuzzed; the list is derived from the API resolver's
route table (plus the ingest function's route), so a new route is fuzzed as soon as it exists.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import strategies as st

from functions.api import app as api_app
from functions.api import handler as api_handler
from functions.ingest import handler as ingest_handler
from local.http_front import (
    _gateway_error,
    build_proxy_event,
    default_routes,
    problem,
    proxy_response,
    resolve_route,
)
from tests.support import contract

INGEST_ROUTES = [("POST", "/events")]  # the ingest function's own API Gateway resource

_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def served_routes() -> list[tuple[str, str]]:
    """(METHOD, resolver path) for every route the API function and the ingest function serve."""
    app = api_app.app
    routes = [(r.method.upper(), r.path) for r in (*app._static_routes, *app._dynamic_routes)]
    return sorted({*routes, *INGEST_ROUTES})


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}|<[^>]+>", "{}", path)


def implemented_operation_ids() -> list[str]:
    """Contract operations whose method and path shape the server routes."""
    served = {(m, _shape("/openmeter" + p)) for m, p in served_routes()}
    return sorted(
        op.operation_id for op in contract.operations().values() if (op.method, _shape(op.path)) in served
    )


# -- the WSGI adapter ------------------------------------------------------------------------------
_ROUTES = default_routes(ingest_handler.lambda_handler, api_handler.lambda_handler)


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out.append((key[5:].replace("_", "-").title(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out.append((key.replace("_", "-").title(), value))
    return out


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = (environ.get("RAW_URI") or "").split("?", 1)[0] or quote(
        environ.get("PATH_INFO", "").encode("latin-1"), safe="/;:@&=+$,!~*'()%"
    )
    raw_uri = path + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    request_id = str(uuid.uuid4())
    found = resolve_route(_ROUTES, method, path)
    if found is None:
        status, headers, payload = problem(404, "Not Found", f"No route for {method} {path}", request_id)
    else:
        route, params = found
        event = build_proxy_event(
            method=method,
            raw_path=raw_uri,
            headers=_headers(environ),
            body=body,
            source_ip="127.0.0.1",
            resource=route.resource,
            path_parameters=params,
            request_id=request_id,
        )
        try:
            status, headers, payload = proxy_response(route.handler(event, None))
        except Exception:
            status, headers, payload = _gateway_error()
    start_response(f"{status} {_STATUS_TEXT.get(status, 'Status')}", headers)
    return [payload]


# -- the schema ------------------------------------------------------------------------------------
def load_schema(token: str) -> Any:
    """The contract as schemathesis sees it, limited to the implemented operations, on the adapter."""
    schema = schemathesis.openapi.from_dict(with_departures(contract.spec()))
    schema.config.update(base_url="http://localhost/v3", headers={"Authorization": f"Bearer {token}"})
    schema.app = wsgi_app
    ids = implemented_operation_ids()
    return schema.include(operation_id=ids)


def seeded_path_parameters(seeds: dict[str, list[str]]) -> Callable[..., Any]:
    """A `flatmap_path_parameters` hook: half the time a path parameter names a seeded object."""

    def hook(_context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        options = [path_parameters]
        for name in path_parameters:
            for value in seeds.get(name, []):
                options.append({**path_parameters, name: value})
        return st.sampled_from(options)

    return hook


# -- documented departures (docs/contract-notes.md) -------------------------------------------------
# The contract as this server means to serve it: each change here is a departure listed in
# docs/contract-notes.md, and the fuzz test checks responses against the contract plus these.
KEY_PARAMS = ("customerId", "featureId", "meterId")  # ids in paths also take the object's key
ULID_ONLY_PATHS = ("/credits/",)  # credit endpoints take the customer ULID only, as the contract says
CONFLICT_OPERATIONS = (
    "create-customer",
    "create-feature",
    "create-meter",
    "delete-meter",
    "create-plan",
    "create-product-catalog-addon",
    "create-plan-addon",
    "create-tax-code",
    "create-credit-adjustment",
    "update-credit-grant-external-settlement",
    "create-billing-profile",
    "update-billing-profile",
    "delete-billing-profile",
    "update-customer-billing",
    "update-customer-billing-app-data",
)  # 409: duplicate key; meter in use; a second draft of a plan or add-on key; a duplicate plan link;
# a credit ledger or grant changed concurrently past the retries; a billing profile in use (the
# default, or pinned by a customer), or writes that kept racing
UNSUPPORTED_MEDIA_TYPE_OPERATIONS = ("ingest-metering-events",)  # 415 on a body that is not JSON


def _problem(ref: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{ref}"}


def with_departures(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of the contract with the departures of docs/contract-notes.md applied."""
    import copy

    spec = copy.deepcopy(raw)
    responses = spec["components"]["responses"]
    responses.setdefault(
        "UnsupportedMediaType",
        {
            "description": "Unsupported Media Type",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/BaseError"}}},
        },
    )
    key_or_id = {
        "anyOf": [{"$ref": "#/components/schemas/ULID"}, {"$ref": "#/components/schemas/ResourceKey"}]
    }
    for path, item in spec["paths"].items():
        ulid_only = any(part in path for part in ULID_ONLY_PATHS)
        for op in item.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            for param in op.get("parameters", []):
                if param.get("in") == "path" and param.get("name") in KEY_PARAMS and not ulid_only:
                    param["schema"] = key_or_id
            if op["operationId"] in CONFLICT_OPERATIONS:
                op["responses"].setdefault("409", _problem("Conflict"))
            if op["operationId"] in UNSUPPORTED_MEDIA_TYPE_OPERATIONS:
                op["responses"].setdefault("415", _problem("UnsupportedMediaType"))
    # `create-subscription` also takes `timing`, as change and cancel do (engine-rules §2.8).
    create = spec["components"]["schemas"]["BillingSubscriptionCreate"]
    create["properties"]["timing"] = spec["components"]["schemas"]["BillingSubscriptionCancel"]["properties"][
        "timing"
    ]
    event = spec["components"]["schemas"]["MeteringEvent"]
    event["required"] = [r for r in event["required"] if r != "specversion"]  # defaults to 1.0
    event["properties"]["specversion"] = {**event["properties"]["specversion"], "enum": ["1.0"]}
    return spec
