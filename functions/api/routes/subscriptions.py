"""Subscriptions (contract tag `OpenMeter Subscriptions`): create, list, get, cancel, change and
unschedule-cancelation. Parse, call, render; errors are the service's domain errors."""

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
