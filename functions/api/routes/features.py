"""Features: CRUD with archive on delete (contract tag `OpenMeter Features`)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from functions.api.app import app, body, json_response, no_content, query_params
from shared.bootstrap import features


@app.post("/features")
def create_feature() -> Response:
    return json_response(201, features().create(body()).to_api())


@app.get("/features")
def list_features() -> Response:
    return json_response(200, features().list(query_params()))


@app.get("/features/<feature_id>")
def get_feature(feature_id: str) -> Response:
    return json_response(200, features().get(feature_id).to_api())


@app.patch("/features/<feature_id>")
def update_feature(feature_id: str) -> Response:
    return json_response(200, features().update(feature_id, body()).to_api())


@app.delete("/features/<feature_id>")
def delete_feature(feature_id: str) -> Response:
    features().delete(feature_id)
    return no_content()
