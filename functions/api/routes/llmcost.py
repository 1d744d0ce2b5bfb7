"""LLM cost: the price database, overrides and feature cost queries (contract tag `OpenMeter LLM Cost`)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import app, body, json_response, no_content, optional_body, query_params
from shared import bootstrap
from shared.llmcost import views
from shared.llmcost.requests import parse_override, parse_price_list
from shared.usage.requests import parse_query

router = APIGatewayRouter()


@router.get("/llm-cost/prices")
def list_llm_prices() -> Response:
    q = parse_price_list(query_params())
    items, total = bootstrap.llm_prices().list_prices(q)
    return json_response(200, views.price_page(q.page, items, total))


@router.get("/llm-cost/prices/<price_id>")
def get_llm_price(price_id: str) -> Response:
    return json_response(200, views.price(bootstrap.llm_prices().get(price_id)))


@router.get("/llm-cost/overrides")
def list_llm_overrides() -> Response:
    q = parse_price_list(query_params(), sortable=False)
    items, total = bootstrap.llm_prices().list_overrides(q)
    return json_response(200, views.price_page(q.page, items, total))


@router.post("/llm-cost/overrides")
def create_llm_override() -> Response:
    return json_response(201, views.price(bootstrap.llm_prices().upsert_override(parse_override(body()))))


@router.delete("/llm-cost/overrides/<price_id>")
def delete_llm_override(price_id: str) -> Response:
    bootstrap.llm_prices().delete_override(price_id)
    return no_content()


@router.post("/features/<feature_id>/cost/query")
def query_feature_cost(feature_id: str) -> Response:
    costs = bootstrap.llm_costs()
    target = costs.target(feature_id)
    result = costs.query(target, parse_query(target.meter, optional_body()))
    accept = app.current_event.get_header_value("accept") or ""
    if "text/csv" in accept:
        return Response(status_code=200, content_type="text/csv", body=views.cost_csv(result))
    return json_response(200, views.cost_result(result))
