"""API Gateway proxy event helpers shared by the ingest and API functions."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson

from shared.api.problem import PROBLEM_JSON, ApiError


def trace_id(event: dict[str, Any]) -> str:
    ctx = event.get("requestContext") or {}
    return str(ctx.get("requestId") or uuid.uuid4().hex)


def header(event: dict[str, Any], name: str) -> str | None:
    headers: dict[str, str | None] = event.get("headers") or {}
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode() if isinstance(body, str) else body


def json_response(status: int, body: Any, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type},
        "body": orjson.dumps(body).decode() if body is not None else "",
        "isBase64Encoded": False,
    }


def empty_response(status: int) -> dict[str, Any]:
    return {"statusCode": status, "headers": {}, "body": "", "isBase64Encoded": False}


def problem_response(error: ApiError, event: dict[str, Any]) -> dict[str, Any]:
    return json_response(error.status, error.body(trace_id(event)), PROBLEM_JSON)
