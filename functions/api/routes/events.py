"""Ingested events: `GET /events` (contract `list-metering-events`). Ingest (POST) is its own function.
Parse, call, render."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import PREFIX, json_response, query_params
from shared import bootstrap
from shared.events import requests, views

router = APIGatewayRouter()


@router.get("/events")
def list_events() -> Response:
    query = requests.parse_list_query(query_params())
    return json_response(200, views.page(f"{PREFIX}/events", query, bootstrap.event_lister().run(query)))
