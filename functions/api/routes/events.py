"""Ingested events: `GET /events` (contract `list-metering-events`). Ingest (POST) is its own function."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from functions.api.app import PREFIX, app, json_response, query_params
from shared.aws import clients
from shared.customers.attribution import Attribution
from shared.events.listing import EventLister
from shared.settings import get_settings


def lister() -> EventLister:
    s = get_settings()
    client = clients.dynamodb()
    return EventLister(
        client,
        s.events_table,
        Attribution(client, s.config_table),
        retention_days=s.event_retention_days,
        base_path=f"{PREFIX}/events",
    )


@app.get("/events")
def list_events() -> Response:
    return json_response(200, lister().list(query_params()))
