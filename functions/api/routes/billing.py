"""Billing settings (contract tags `OpenMeter Apps`, `OpenMeter Billing Settings`, and the customer
billing operations of `OpenMeter Customers`): installed apps, billing profiles, customer overrides.
`{customerId}` accepts the id or the key. Parse, call, render."""

from __future__ import annotations

from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, query_params
from shared import bootstrap
from shared.billing import requests, views

router = APIGatewayRouter()


@router.get("/apps")
def list_apps() -> Response:
    page = requests.page(query_params())
    return json_response(200, views.page(page, bootstrap.apps().list(page), views.app))


@router.get("/apps/<app_id>")
def get_app(app_id: str) -> Response:
    return json_response(200, views.app(bootstrap.apps().get(unquote(app_id))))


@router.get("/profiles")
def list_profiles() -> Response:
    page = requests.page(query_params())
    return json_response(200, views.page(page, bootstrap.billing_profiles().list(page), views.profile))


@router.post("/profiles")
def create_profile() -> Response:
    created = bootstrap.billing_profiles().create(requests.create_profile(body()))
    return json_response(201, views.profile(created))


@router.get("/profiles/<profile_id>")
def get_profile(profile_id: str) -> Response:
    return json_response(200, views.profile(bootstrap.billing_profiles().get(unquote(profile_id))))


@router.put("/profiles/<profile_id>")
def update_profile(profile_id: str) -> Response:
    updated = bootstrap.billing_profiles().update(unquote(profile_id), requests.update_profile(body()))
    return json_response(200, views.profile(updated))


@router.delete("/profiles/<profile_id>")
def delete_profile(profile_id: str) -> Response:
    bootstrap.billing_profiles().delete(unquote(profile_id))
    return no_content()


@router.get("/customers/<customer_id>/billing")
def get_customer_billing(customer_id: str) -> Response:
    return json_response(200, views.customer_billing(bootstrap.customer_billing().get(unquote(customer_id))))


@router.put("/customers/<customer_id>/billing")
def update_customer_billing(customer_id: str) -> Response:
    inp = requests.customer_billing(body())
    updated = bootstrap.customer_billing().update(unquote(customer_id), inp)
    return json_response(200, views.customer_billing(updated))


@router.put("/customers/<customer_id>/billing/app-data")
def update_customer_app_data(customer_id: str) -> Response:
    updated = bootstrap.customer_billing().update_app_data(unquote(customer_id), requests.app_data(body()))
    return json_response(200, views.app_data(updated))


@router.post("/customers/<customer_id>/billing/stripe/portal-sessions")
def create_portal_session(customer_id: str) -> Response:
    options = requests.portal_session(body())
    session = bootstrap.customer_billing().portal_session(unquote(customer_id), options)
    return json_response(201, views.portal_session(session))
