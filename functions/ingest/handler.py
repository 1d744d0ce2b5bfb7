"""POST /v3/openmeter/events: validate CloudEvents and publish them to Kinesis (202)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from shared.api.http import empty_response, header, problem_response, raw_body
from shared.api.problem import ApiError
from shared.auth.tokens import Permission, authorize
from shared.bootstrap import ingest_service as service

logger = Logger(service="meterline-ingest")
__all__ = ["lambda_handler", "service"]  # `service` (built by shared.bootstrap) is reset by tests


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        authorize(event.get("headers"), Permission.INGEST)
        count = service().ingest(raw_body(event), header(event, "content-type"))
    except ApiError as err:
        if err.status >= 500:
            logger.error("ingest failed", extra={"detail": err.detail})
        return problem_response(err, event)
    logger.debug("ingested", extra={"events": count})
    return empty_response(202)
