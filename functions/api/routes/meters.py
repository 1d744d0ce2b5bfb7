"""Meters: CRUD and usage queries (contract tags `Meters`)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from functions.api.app import app, body, json_response, no_content, query_params
from shared.bootstrap import meters, usage
from shared.usage.query import parse_query, to_api, to_csv


@app.post("/meters")
def create_meter() -> Response:
    return json_response(201, meters().create(body()).to_api())


@app.get("/meters")
def list_meters() -> Response:
    return json_response(200, meters().list(query_params()))


@app.get("/meters/<meter_id>")
def get_meter(meter_id: str) -> Response:
    return json_response(200, meters().get(meter_id).to_api())


@app.put("/meters/<meter_id>")
def update_meter(meter_id: str) -> Response:
    return json_response(200, meters().update(meter_id, body()).to_api())


@app.delete("/meters/<meter_id>")
def delete_meter(meter_id: str) -> Response:
    meters().delete(meter_id)
    return no_content()


@app.post("/meters/<meter_id>/query")
def query_meter(meter_id: str) -> Response:
    meter = meters().get(meter_id)
    raw = app.current_event.body
    parsed = parse_query(meter, body() if raw and raw.strip() else {})
    result = usage().run(meter, parsed)
    accept = (
        (app.current_event.headers or {}).get("accept") or app.current_event.get_header_value("accept") or ""
    )
    if "text/csv" in accept:
        return Response(status_code=200, content_type="text/csv", body=to_csv(result))
    return json_response(200, to_api(result))
