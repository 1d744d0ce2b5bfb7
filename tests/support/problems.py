"""One assertion for the contract's error body (RFC 7807 problem+json, BaseError/BadRequestError).

Every error the API answers has `status`, `title`, `type`, `detail` and an `instance` carrying the
request's trace (`kong:trace:<id>`); a 400 names each bad input in `invalid_parameters`.
"""

from __future__ import annotations

from typing import Any


def problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert `resp` is a problem+json of `status` (naming `field`, if given) and return its body."""
    assert resp.status == status, resp
    assert resp.headers.get("content-type") == "application/problem+json", resp.headers
    body = resp.json()
    assert body["status"] == status, body
    for key in ("title", "type", "detail"):
        assert isinstance(body.get(key), str) and body[key], body
    assert body["instance"].startswith("kong:trace:") and len(body["instance"]) > len("kong:trace:"), body
    if status == 400 or "invalid_parameters" in body:
        params = body["invalid_parameters"]
        assert params and all(isinstance(p.get("field"), str) and p["field"] for p in params), body
    if field is not None:
        assert field in [p["field"] for p in body.get("invalid_parameters", [])], body
    return body


def fields(resp: Any) -> list[str]:
    """The fields a 400 names, in order."""
    return [p["field"] for p in problem(resp, 400)["invalid_parameters"]]


def field_rules(resp: Any) -> list[tuple[str, str | None]]:
    """The (field, rule) pairs a 400 names, in order."""
    return [(p["field"], p.get("rule")) for p in problem(resp, 400)["invalid_parameters"]]
