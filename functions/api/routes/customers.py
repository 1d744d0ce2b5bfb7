"""Customers: CRUD (contract tag `OpenMeter Customers`). `{customerId}` accepts the id or the key.
Parse, call, render."""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, query_params
from shared import bootstrap
from shared.customers import requests, views

router = APIGatewayRouter()


@router.post("/customers")
def create_customer() -> Response:
    return json_response(201, views.customer(bootstrap.customers().create(requests.create_customer(body()))))


@router.get("/customers")
def list_customers() -> Response:
    query = requests.list_customers(query_params())
    return json_response(200, views.page(query.page, bootstrap.customers().list(query)))


@router.get("/customers/<customer_id>")
def get_customer(customer_id: str) -> Response:
    # A deleted customer stays readable by id, with `deleted_at`.
    return json_response(
        200, views.customer(bootstrap.customers().get(unquote(customer_id), include_deleted=True))
    )


@router.put("/customers/<customer_id>")
def upsert_customer(customer_id: str) -> Response:
    req = requests.upsert_customer(body())
    return json_response(200, views.customer(bootstrap.customers().update(unquote(customer_id), req)))


@router.delete("/customers/<customer_id>")
def delete_customer(customer_id: str) -> Response:
    # Ends the customer's entitlements too (shared/customers/deletion.py).
    bootstrap.customer_deletion().delete(unquote(customer_id))
    return no_content()
