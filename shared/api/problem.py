"""RFC 7807 problem+json errors in the contract's Kong style.

Every error the API returns is one of these; handlers raise, the resolver renders.
`instance` carries the request's correlation id as `kong:trace:<id>`.
"""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self, trace_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status,
            "title": self.title,
            "type": f"https://httpstatuses.com/{self.status}",
            "instance": f"kong:trace:{trace_id}",
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


def invalid_parameter(
    field: str, reason: str, rule: str | None = None, source: str = "body"
) -> dict[str, Any]:
    param: dict[str, Any] = {"field": field, "reason": reason, "source": source}
    if rule:
        param["rule"] = rule
    return param


class BadRequest(ApiError):
    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, invalid_parameters: list[dict[str, Any]] | None = None) -> None:
        params = invalid_parameters or [invalid_parameter("body", detail, "invalid")]
        super().__init__(detail, invalid_parameters=params)

    @classmethod
    def field(cls, field: str, reason: str, rule: str = "invalid", source: str = "body") -> BadRequest:
        return cls(f"Invalid [{field}]: {reason}", [invalid_parameter(field, reason, rule, source)])


class Unauthorized(ApiError):
    status = 401
    title = "Unauthorized"


class Forbidden(ApiError):
    status = 403
    title = "Forbidden"


class NotFound(ApiError):
    status = 404
    title = "Not Found"


class MethodNotAllowed(ApiError):
    status = 405
    title = "Method Not Allowed"


class Conflict(ApiError):
    status = 409
    title = "Conflict"


class Gone(ApiError):
    status = 410
    title = "Gone"


class PayloadTooLarge(ApiError):
    status = 413
    title = "Payload Too Large"


class UnsupportedMediaType(ApiError):
    status = 415
    title = "Unsupported Media Type"


class ServiceUnavailable(ApiError):
    status = 503
    title = "Service Unavailable"
