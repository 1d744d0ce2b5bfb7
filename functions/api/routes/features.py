"""Features: CRUD with archive on delete (contract tag `OpenMeter Features`). Parse, call, render."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, query_params
from shared import bootstrap
from shared.features import requests, views

router = APIGatewayRouter()


@router.post("/features")
def create_feature() -> Response:
    return json_response(201, views.feature(bootstrap.features().create(requests.create_feature(body()))))


@router.get("/features")
def list_features() -> Response:
    query = requests.list_features(query_params())
    return json_response(200, views.page(query.page, bootstrap.features().list(query)))


@router.get("/features/<feature_id>")
def get_feature(feature_id: str) -> Response:
    return json_response(200, views.feature(bootstrap.features().get(feature_id)))


@router.patch("/features/<feature_id>")
def update_feature(feature_id: str) -> Response:
    change = requests.update_feature(body())
    return json_response(200, views.feature(bootstrap.features().update(feature_id, change)))


@router.delete("/features/<feature_id>")
def delete_feature(feature_id: str) -> Response:
    bootstrap.features().delete(feature_id)
    return no_content()
