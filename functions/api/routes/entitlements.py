"""Entitlements, grants, resets and access (contract: `GET /customers/{id}/entitlement-access`;
the rest is customer-scoped in the same style). `{customerId}` accepts the id or the key,
`{entitlementId}` the entitlement id or the feature key of the customer's active entitlement."""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response

from functions.api.app import app, body, json_response, no_content, optional_body, query_params
from shared.entitlements.service import EntitlementService
from shared.entitlements.wiring import entitlements

BASE = "/customers/<customer_id>/entitlements"


def service() -> EntitlementService:
    return entitlements().service


@app.get("/customers/<customer_id>/entitlement-access")
def entitlement_access(customer_id: str) -> Response:
    return json_response(200, service().access(unquote(customer_id)))


@app.post(BASE)
def create_entitlement(customer_id: str) -> Response:
    return json_response(201, service().create(unquote(customer_id), body()))


@app.get(BASE)
def list_entitlements(customer_id: str) -> Response:
    return json_response(200, service().list(unquote(customer_id), query_params()))


@app.get(BASE + "/<entitlement_id>")
def get_entitlement(customer_id: str, entitlement_id: str) -> Response:
    svc = service()
    return json_response(200, svc.to_api(svc.get(unquote(customer_id), unquote(entitlement_id))))


@app.delete(BASE + "/<entitlement_id>")
def delete_entitlement(customer_id: str, entitlement_id: str) -> Response:
    service().delete(unquote(customer_id), unquote(entitlement_id))
    return no_content()


@app.get(BASE + "/<entitlement_id>/value")
def entitlement_value(customer_id: str, entitlement_id: str) -> Response:
    return json_response(200, service().value(unquote(customer_id), unquote(entitlement_id), query_params()))


@app.get(BASE + "/<entitlement_id>/history")
def entitlement_history(customer_id: str, entitlement_id: str) -> Response:
    return json_response(
        200, service().history(unquote(customer_id), unquote(entitlement_id), query_params())
    )


@app.post(BASE + "/<entitlement_id>/reset")
def reset_entitlement(customer_id: str, entitlement_id: str) -> Response:
    service().reset(unquote(customer_id), unquote(entitlement_id), optional_body())
    return no_content()


@app.post(BASE + "/<entitlement_id>/grants")
def create_grant(customer_id: str, entitlement_id: str) -> Response:
    return json_response(201, service().create_grant(unquote(customer_id), unquote(entitlement_id), body()))


@app.get(BASE + "/<entitlement_id>/grants")
def list_grants(customer_id: str, entitlement_id: str) -> Response:
    return json_response(
        200, service().list_grants(unquote(customer_id), unquote(entitlement_id), query_params())
    )


@app.post(BASE + "/<entitlement_id>/grants/<grant_id>/void")
def void_grant(customer_id: str, entitlement_id: str, grant_id: str) -> Response:
    return json_response(
        200,
        service().void_grant(
            unquote(customer_id), unquote(entitlement_id), unquote(grant_id), optional_body()
        ),
    )
