"""Notifications: channels, rules (with a test action) and events (with resend). Not in the v3
contract; designed in its style (snake_case, page pagination, `filter[...]`, problem+json).

Each route parses (`requests`), calls a use case, renders (`views`).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import (
    app,
    caller_role,
    json_response,
    no_content,
    query_params,
    require_json_media_type,
)
from shared import bootstrap
from shared.auth.tokens import Role
from shared.notifications import requests, views
from shared.notifications.models import Channel, Rule

router = APIGatewayRouter()
BASE = "/notification"


def _body(optional: bool = False) -> Any:
    if app.current_event.body:
        require_json_media_type()
    return requests.decimal_json(app.current_event.body, optional)


def _channel_view(channel: Channel) -> dict[str, Any]:
    # The request's own role (authorised once, before routing): signing secrets go to admins only.
    return views.channel(channel, show_secret=caller_role() is Role.ADMIN)


# -- channels ------------------------------------------------------------------------------------
@router.post(f"{BASE}/channels")
def create_channel() -> Response:
    return json_response(
        201, views.channel(bootstrap.notification_config().create_channel(requests.channel(_body())))
    )


@router.get(f"{BASE}/channels")
def list_channels() -> Response:
    query = requests.list_query(query_params())
    listed = bootstrap.notification_config().list_channels(query)
    return json_response(200, views.page(query.page, listed, _channel_view))


@router.get(f"{BASE}/channels/<channel_id>")
def get_channel(channel_id: str) -> Response:
    return json_response(200, _channel_view(bootstrap.notification_config().get_channel(channel_id)))


@router.put(f"{BASE}/channels/<channel_id>")
def update_channel(channel_id: str) -> Response:
    req = requests.channel(_body())
    return json_response(200, views.channel(bootstrap.notification_config().update_channel(channel_id, req)))


@router.delete(f"{BASE}/channels/<channel_id>")
def delete_channel(channel_id: str) -> Response:
    bootstrap.notification_config().delete_channel(channel_id)
    return no_content()


# -- rules ---------------------------------------------------------------------------------------
def _rule_view(rule: Rule) -> dict[str, Any]:
    return views.rule(rule, bootstrap.notification_config().channels_of([rule]))


@router.post(f"{BASE}/rules")
def create_rule() -> Response:
    return json_response(201, _rule_view(bootstrap.notification_config().create_rule(requests.rule(_body()))))


@router.get(f"{BASE}/rules")
def list_rules() -> Response:
    svc = bootstrap.notification_config()
    query = requests.list_query(query_params())
    listed = svc.list_rules(query)
    channels = svc.channels_of(listed.items)
    return json_response(200, views.page(query.page, listed, lambda r: views.rule(r, channels)))


@router.get(f"{BASE}/rules/<rule_id>")
def get_rule(rule_id: str) -> Response:
    return json_response(200, _rule_view(bootstrap.notification_config().get_rule(rule_id)))


@router.put(f"{BASE}/rules/<rule_id>")
def update_rule(rule_id: str) -> Response:
    req = requests.rule(_body())
    return json_response(200, _rule_view(bootstrap.notification_config().update_rule(rule_id, req)))


@router.delete(f"{BASE}/rules/<rule_id>")
def delete_rule(rule_id: str) -> Response:
    bootstrap.notification_config().delete_rule(rule_id)
    return no_content()


@router.post(f"{BASE}/rules/<rule_id>/test")
def test_rule(rule_id: str) -> Response:
    rule = bootstrap.notification_config().get_rule(rule_id)
    return json_response(201, views.event(bootstrap.notification_events().test_rule(rule)))


# -- events --------------------------------------------------------------------------------------
@router.get(f"{BASE}/events")
def list_events() -> Response:
    query = requests.events_query(query_params())
    listed = bootstrap.notification_events().list(query)
    return json_response(200, views.page(query.page, listed, views.event))


@router.get(f"{BASE}/events/<event_id>")
def get_event(event_id: str) -> Response:
    return json_response(200, views.event(bootstrap.notification_events().get(event_id)))


@router.post(f"{BASE}/events/<event_id>/resend")
def resend_event(event_id: str) -> Response:
    req = requests.resend(_body(optional=True))
    return json_response(202, views.event(bootstrap.notification_events().resend(event_id, req)))
