"""Prepaid credits of a customer (contract tag `OpenMeter Customers`, `/customers/{customerId}/credits/…`):
grants, external settlement, balances, transactions, adjustments. `{customerId}` is the ULID only.

Each route parses (`requests`), calls the use case, renders (`views`); errors are domain errors,
mapped to problem+json by the app.
"""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, query_params
from shared import bootstrap
from shared.credits import requests, views

router = APIGatewayRouter()
BASE = "/customers/<customer_id>/credits"


def _customer(raw: str) -> str:
    return requests.customer_id(unquote(raw))


@router.post(BASE + "/grants")
def create_credit_grant(customer_id: str) -> Response:
    cid = _customer(customer_id)
    req = requests.create_grant(body())
    service = bootstrap.credits()
    return json_response(201, views.grant(service.create_grant(cid, req), service.clock.now()))


@router.get(BASE + "/grants")
def list_credit_grants(customer_id: str) -> Response:
    cid = _customer(customer_id)
    query = requests.list_grants(query_params())
    service = bootstrap.credits()
    listed = service.list_grants(cid, query)
    return json_response(200, views.grants_page(query.page, listed, service.clock.now()))


@router.get(BASE + "/grants/<grant_id>")
def get_credit_grant(customer_id: str, grant_id: str) -> Response:
    cid, gid = _customer(customer_id), requests.grant_id(unquote(grant_id))
    service = bootstrap.credits()
    return json_response(200, views.grant(service.get_grant(cid, gid), service.clock.now()))


@router.post(BASE + "/grants/<grant_id>/settlement/external")
def settle_credit_grant(customer_id: str, grant_id: str) -> Response:
    cid, gid = _customer(customer_id), requests.grant_id(unquote(grant_id))
    req = requests.settlement(body())
    service = bootstrap.credits()
    return json_response(200, views.grant(service.settle_externally(cid, gid, req), service.clock.now()))


@router.get(BASE + "/balance")
def credit_balance(customer_id: str) -> Response:
    cid = _customer(customer_id)
    query = requests.balance(query_params())
    retrieved_at, found = bootstrap.credits().balances(cid, query)
    return json_response(200, views.balances(retrieved_at, found))


@router.get(BASE + "/transactions")
def credit_transactions(customer_id: str) -> Response:
    cid = _customer(customer_id)
    params = query_params()
    query = requests.list_transactions(params)
    page = bootstrap.credits().transactions(cid, query)
    return json_response(200, views.transactions_page(cid, params, query.size, page))


@router.post(BASE + "/adjustments")
def create_credit_adjustment(customer_id: str) -> Response:
    cid = _customer(customer_id)
    req = requests.create_adjustment(body())
    return json_response(201, views.adjustment(bootstrap.credits().adjust(cid, req)))
