"""POST /v3/openmeter/events: validate CloudEvents and publish them to Kinesis (202)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared.api.http import empty_response, header, problem_response, raw_body
from shared.api.problem import ApiError, from_domain
from shared.auth.tokens import Permission, authorize
from shared.bootstrap import ingest_service as service
from shared.core.errors import DomainError
from shared.core.observability import lambda_entry, metrics
from shared.core.observability import log as logger
from shared.ingest import requests

__all__ = ["lambda_handler", "service"]  # `service` (built by shared.bootstrap) is reset by tests


@lambda_entry("ingest", correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        authorize(event.get("headers"), Permission.INGEST)
        svc = service()
        request = requests.parse(
            raw_body(event), header(event, "content-type"), svc.max_events, svc.max_bytes
        )
        count = svc.ingest(request)
    except (ApiError, DomainError) as caught:
        err = from_domain(caught) if isinstance(caught, DomainError) else caught
        if err.status >= 500:
            logger.error("ingest failed", extra={"detail": err.detail})
        return problem_response(err, event)
    logger.debug("ingested", extra={"events": count})
    metrics.add_metric("EventsAccepted", MetricUnit.Count, count)
    return empty_response(202)
