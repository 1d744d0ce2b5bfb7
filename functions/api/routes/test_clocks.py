"""Test clocks (`/test-clocks`): not in the v3 contract; designed in its style (snake_case, page
pagination, problem+json, ULIDs) after Stripe's test clocks. Each route parses, calls, renders."""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, query_params
from shared import bootstrap
from shared.testclocks import requests, views

router = APIGatewayRouter()
BASE = "/test-clocks"


@router.post(BASE)
def create_test_clock() -> Response:
    return json_response(201, views.clock(bootstrap.test_clocks().create(requests.create(body()))))


@router.get(BASE)
def list_test_clocks() -> Response:
    query = requests.list_query(query_params())
    return json_response(200, views.page(query.page, bootstrap.test_clocks().list(query)))


@router.get(BASE + "/<clock_id>")
def get_test_clock(clock_id: str) -> Response:
    return json_response(200, views.clock(bootstrap.test_clocks().get(unquote(clock_id))))


@router.delete(BASE + "/<clock_id>")
def delete_test_clock(clock_id: str) -> Response:
    bootstrap.test_clocks().delete(unquote(clock_id))
    return no_content()


@router.post(BASE + "/<clock_id>/advance")
def advance_test_clock(clock_id: str) -> Response:
    req = requests.advance(body())
    # 202: the clock is `advancing`; it reports `ready` when the rate function has run the advance.
    return json_response(202, views.clock(bootstrap.test_clocks().advance(unquote(clock_id), req)))
