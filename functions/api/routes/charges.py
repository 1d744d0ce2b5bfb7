"""Customer charges (contract tag `OpenMeter Customers`, `/customers/{customerId}/charges`): list and
create, the two operations the contract defines. `{customerId}` is the ULID only.

Each route parses (`requests`), calls the use case, renders (`views`); errors are domain errors,
mapped to problem+json by the app.
"""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, query_params
from shared import bootstrap
from shared.charges import requests, views

router = APIGatewayRouter()
BASE = "/customers/<customer_id>/charges"


@router.get(BASE)
def list_customer_charges(customer_id: str) -> Response:
    cid = requests.customer_id(unquote(customer_id))
    query = requests.list_charges(query_params())
    return json_response(200, views.page(query.page, bootstrap.charges().list(cid, query)))


@router.post(BASE)
def create_customer_charge(customer_id: str) -> Response:
    cid = requests.customer_id(unquote(customer_id))
    req = requests.create_charge(body())
    return json_response(201, views.charge(bootstrap.charges().create(cid, req)))
