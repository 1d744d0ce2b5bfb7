"""Meters: CRUD and usage queries (contract tags `Meters`). Parse, call, render."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import app, body, json_response, no_content, query_params
from shared import bootstrap
from shared.meters import requests, views
from shared.usage import requests as usage_requests
from shared.usage import views as usage_views

router = APIGatewayRouter()


@router.post("/meters")
def create_meter() -> Response:
    return json_response(201, views.meter(bootstrap.meters().create(requests.create_meter(body()))))


@router.get("/meters")
def list_meters() -> Response:
    query = requests.list_meters(query_params())
    return json_response(200, views.page(query.page, bootstrap.meters().list(query)))


@router.get("/meters/<meter_id>")
def get_meter(meter_id: str) -> Response:
    return json_response(200, views.meter(bootstrap.meters().get(meter_id)))


@router.put("/meters/<meter_id>")
def update_meter(meter_id: str) -> Response:
    return json_response(200, views.meter(bootstrap.meters().update(meter_id, requests.update_meter(body()))))


@router.delete("/meters/<meter_id>")
def delete_meter(meter_id: str) -> Response:
    bootstrap.meters().delete(meter_id)
    return no_content()


@router.post("/meters/<meter_id>/query")
def query_meter(meter_id: str) -> Response:
    meter = bootstrap.meters().get(meter_id)
    raw = app.current_event.body
    parsed = usage_requests.parse_query(meter, body() if raw and raw.strip() else {})
    result = bootstrap.usage().run(meter, parsed)
    accept = (
        (app.current_event.headers or {}).get("accept") or app.current_event.get_header_value("accept") or ""
    )
    if "text/csv" in accept:
        return Response(status_code=200, content_type="text/csv", body=usage_views.to_csv(result))
    return json_response(200, usage_views.to_api(result))
