"""Customers: CRUD (contract tag `OpenMeter Customers`). `{customerId}` accepts the id or the key."""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response

from functions.api.app import app, body, json_response, no_content, query_params
from shared import bootstrap


@app.post("/customers")
def create_customer() -> Response:
    return json_response(201, bootstrap.customers().create(body()).to_api())


@app.get("/customers")
def list_customers() -> Response:
    return json_response(200, bootstrap.customers().list(query_params()))


@app.get("/customers/<customer_id>")
def get_customer(customer_id: str) -> Response:
    # A deleted customer stays readable by id, with `deleted_at`.
    return json_response(200, bootstrap.customers().get(unquote(customer_id), include_deleted=True).to_api())


@app.put("/customers/<customer_id>")
def upsert_customer(customer_id: str) -> Response:
    return json_response(200, bootstrap.customers().update(unquote(customer_id), body()).to_api())


@app.delete("/customers/<customer_id>")
def delete_customer(customer_id: str) -> Response:
    # Ends the customer's entitlements too (shared/customers/deletion.py).
    bootstrap.customer_deletion().delete(unquote(customer_id))
    return no_content()
