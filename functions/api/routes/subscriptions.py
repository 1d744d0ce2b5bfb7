"""Subscriptions (contract tag `OpenMeter Subscriptions`): create, list, get, cancel, change,
unschedule-cancelation, and their add-ons (list and get per the contract; create and quantity changes
beyond it, README "API"). Parse, call, render; errors are the service's domain errors."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, optional_body, query_params
from shared import bootstrap
from shared.subscriptions import requests, views

router = APIGatewayRouter()


@router.post("/subscriptions")
def create_subscription() -> Response:
    svc = bootstrap.subscriptions()
    sub = svc.create(requests.create_subscription(body()))
    return json_response(201, views.subscription(sub, svc.now_for(sub.customer_id)))


@router.get("/subscriptions")
def list_subscriptions() -> Response:
    svc = bootstrap.subscriptions()
    query = requests.list_subscriptions(query_params())
    return json_response(200, views.page(query.page, svc.list(query), svc.now_for))


@router.get("/subscriptions/<subscription_id>")
def get_subscription(subscription_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub = svc.get(requests.path_id(subscription_id))
    return json_response(200, views.subscription(sub, svc.now_for(sub.customer_id)))


@router.post("/subscriptions/<subscription_id>/cancel")
def cancel_subscription(subscription_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub_id = requests.path_id(subscription_id)
    sub = svc.cancel(sub_id, requests.cancel_subscription(optional_body()))
    return json_response(200, views.subscription(sub, svc.now_for(sub.customer_id)))


@router.post("/subscriptions/<subscription_id>/unschedule-cancelation")
def unschedule_cancelation(subscription_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub = svc.unschedule_cancelation(requests.path_id(subscription_id))
    return json_response(200, views.subscription(sub, svc.now_for(sub.customer_id)))


@router.post("/subscriptions/<subscription_id>/change")
def change_subscription(subscription_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub_id = requests.path_id(subscription_id)
    result = svc.change(sub_id, requests.change_subscription(body()))
    return json_response(200, views.change(result, svc.now_for(result.current.customer_id)))


@router.get("/subscriptions/<subscription_id>/addons")
def list_subscription_addons(subscription_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub = svc.get(requests.path_id(subscription_id))
    query = requests.list_subscription_addons(query_params())
    listed = svc.list_addons(sub.id, query)
    now = svc.now_for(sub.customer_id)
    rendered = [views.subscription_addon(a, svc.addon_version(a.addon_id), sub, now) for a in listed.items]
    return json_response(200, query.page.response(rendered, listed.total))


@router.post("/subscriptions/<subscription_id>/addons")
def create_subscription_addon(subscription_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub_id = requests.path_id(subscription_id)
    created = svc.add_addon(sub_id, requests.create_subscription_addon(body()))
    return _addon(201, created.subscription_id, created.id)


@router.get("/subscriptions/<subscription_id>/addons/<subscription_addon_id>")
def get_subscription_addon(subscription_id: str, subscription_addon_id: str) -> Response:
    sub_id = requests.path_id(subscription_id)
    return _addon(200, sub_id, requests.path_id(subscription_addon_id, "subscriptionAddonId"))


@router.patch("/subscriptions/<subscription_id>/addons/<subscription_addon_id>")
def update_subscription_addon(subscription_id: str, subscription_addon_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub_id = requests.path_id(subscription_id)
    addon_id = requests.path_id(subscription_addon_id, "subscriptionAddonId")
    svc.update_addon(sub_id, addon_id, requests.update_subscription_addon(body()))
    return _addon(200, sub_id, addon_id)


def _addon(status: int, sub_id: str, sub_addon_id: str) -> Response:
    svc = bootstrap.subscriptions()
    sub = svc.get(sub_id)
    a = svc.addon(sub_id, sub_addon_id)
    now = svc.now_for(sub.customer_id)
    return json_response(status, views.subscription_addon(a, svc.addon_version(a.addon_id), sub, now))
