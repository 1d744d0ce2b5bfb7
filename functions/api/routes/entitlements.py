"""Entitlements, grants, resets and access (contract: `GET /customers/{id}/entitlement-access`;
the rest is customer-scoped in the same style). `{customerId}` accepts the id or the key,
`{entitlementId}` the entitlement id or the feature key of the customer's active entitlement.

Each route parses (`requests`), calls the use case, renders (`views`); errors are the service's
domain errors, mapped to problem+json by the app.
"""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, optional_body, query_params
from shared import bootstrap
from shared.entitlements import requests, views

router = APIGatewayRouter()
BASE = "/customers/<customer_id>/entitlements"


@router.get("/customers/<customer_id>/entitlement-access")
def entitlement_access(customer_id: str) -> Response:
    return json_response(200, views.access(bootstrap.entitlement_service().access(unquote(customer_id))))


@router.post(BASE)
def create_entitlement(customer_id: str) -> Response:
    req = requests.create_entitlement(body())
    created = bootstrap.entitlement_service().create(unquote(customer_id), req)
    return json_response(201, views.entitlement(created))


@router.get(BASE)
def list_entitlements(customer_id: str) -> Response:
    query = requests.list_entitlements(query_params())
    listed = bootstrap.entitlement_service().list(unquote(customer_id), query)
    return json_response(200, views.page(query.page, listed, views.entitlement))


@router.get(BASE + "/<entitlement_id>")
def get_entitlement(customer_id: str, entitlement_id: str) -> Response:
    ent = bootstrap.entitlement_service().get(unquote(customer_id), unquote(entitlement_id))
    return json_response(200, views.entitlement(ent))


@router.delete(BASE + "/<entitlement_id>")
def delete_entitlement(customer_id: str, entitlement_id: str) -> Response:
    bootstrap.entitlement_service().delete(unquote(customer_id), unquote(entitlement_id))
    return no_content()


@router.get(BASE + "/<entitlement_id>/value")
def entitlement_value(customer_id: str, entitlement_id: str) -> Response:
    query = requests.value(query_params())
    value = bootstrap.entitlement_service().value(unquote(customer_id), unquote(entitlement_id), query)
    return json_response(200, views.value(value))


@router.get(BASE + "/<entitlement_id>/history")
def entitlement_history(customer_id: str, entitlement_id: str) -> Response:
    query = requests.history(query_params())
    history = bootstrap.entitlement_service().history(unquote(customer_id), unquote(entitlement_id), query)
    return json_response(200, views.history(history))


@router.post(BASE + "/<entitlement_id>/reset")
def reset_entitlement(customer_id: str, entitlement_id: str) -> Response:
    req = requests.reset(optional_body())
    bootstrap.entitlement_service().reset(unquote(customer_id), unquote(entitlement_id), req)
    return no_content()


@router.post(BASE + "/<entitlement_id>/grants")
def create_grant(customer_id: str, entitlement_id: str) -> Response:
    req = requests.create_grant(body())
    grant = bootstrap.entitlement_service().create_grant(unquote(customer_id), unquote(entitlement_id), req)
    return json_response(201, views.grant(grant))


@router.get(BASE + "/<entitlement_id>/grants")
def list_grants(customer_id: str, entitlement_id: str) -> Response:
    query = requests.list_grants(query_params())
    listed = bootstrap.entitlement_service().list_grants(unquote(customer_id), unquote(entitlement_id), query)
    return json_response(200, views.page(query.page, listed, views.grant))


@router.post(BASE + "/<entitlement_id>/grants/<grant_id>/void")
def void_grant(customer_id: str, entitlement_id: str, grant_id: str) -> Response:
    req = requests.void_grant(optional_body())
    grant = bootstrap.entitlement_service().void_grant(
        unquote(customer_id), unquote(entitlement_id), unquote(grant_id), req
    )
    return json_response(200, views.grant(grant))
