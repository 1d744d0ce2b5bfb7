"""Notifications: channels, rules (with a test action) and events (with resend). Not in the v3
contract; designed in its style (snake_case, page pagination, `filter[...]`, problem+json)."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import Response

from functions.api.app import app, json_response, no_content, query_params
from shared.api.validation import parse_json_body
from shared.auth.tokens import Permission, Role, authorize
from shared.notifications.config_service import NotificationConfigService
from shared.notifications.event_service import NotificationEventService
from shared.notifications.repository import NotificationConfigRepository
from shared.notifications.store import NotificationStore
from shared.settings import get_settings

BASE = "/notification"


@lru_cache(maxsize=1)
def config() -> NotificationConfigService:
    return NotificationConfigService(NotificationConfigRepository(get_settings().config_table))


@lru_cache(maxsize=1)
def events() -> NotificationEventService:
    s = get_settings()
    return NotificationEventService(
        NotificationStore(s.notifications_table), NotificationConfigRepository(s.config_table)
    )


def decimal_body(optional: bool = False) -> Any:
    """The JSON body with numbers as Decimal (threshold values never pass through float)."""
    raw = app.current_event.body
    if optional and not raw:
        return None
    parse_json_body(raw)  # problem+json for a missing / malformed body
    return json.loads(raw, parse_float=Decimal)


def _channel_view(channel: Any) -> dict[str, Any]:
    """Signing secrets are shown to admins only: a viewer holding one could forge webhooks."""
    body = channel.to_api()
    if "signing_secret" in body and authorize(app.current_event.headers, Permission.READ) is not Role.ADMIN:
        del body["signing_secret"]
    return body


# -- channels ------------------------------------------------------------------------------------
@app.post(f"{BASE}/channels")
def create_channel() -> Response:
    return json_response(201, config().create_channel(decimal_body()).to_api())


@app.get(f"{BASE}/channels")
def list_channels() -> Response:
    return json_response(200, config().list_channels(query_params(), render=_channel_view))


@app.get(f"{BASE}/channels/<channel_id>")
def get_channel(channel_id: str) -> Response:
    return json_response(200, _channel_view(config().get_channel(channel_id)))


@app.put(f"{BASE}/channels/<channel_id>")
def update_channel(channel_id: str) -> Response:
    return json_response(200, config().update_channel(channel_id, decimal_body()).to_api())


@app.delete(f"{BASE}/channels/<channel_id>")
def delete_channel(channel_id: str) -> Response:
    config().delete_channel(channel_id)
    return no_content()


# -- rules ---------------------------------------------------------------------------------------
@app.post(f"{BASE}/rules")
def create_rule() -> Response:
    svc = config()
    return json_response(201, svc.rule_api(svc.create_rule(decimal_body())))


@app.get(f"{BASE}/rules")
def list_rules() -> Response:
    return json_response(200, config().list_rules(query_params()))


@app.get(f"{BASE}/rules/<rule_id>")
def get_rule(rule_id: str) -> Response:
    svc = config()
    return json_response(200, svc.rule_api(svc.get_rule(rule_id)))


@app.put(f"{BASE}/rules/<rule_id>")
def update_rule(rule_id: str) -> Response:
    svc = config()
    return json_response(200, svc.rule_api(svc.update_rule(rule_id, decimal_body())))


@app.delete(f"{BASE}/rules/<rule_id>")
def delete_rule(rule_id: str) -> Response:
    config().delete_rule(rule_id)
    return no_content()


@app.post(f"{BASE}/rules/<rule_id>/test")
def test_rule(rule_id: str) -> Response:
    return json_response(201, events().test_rule(config().get_rule(rule_id)).to_api())


# -- events --------------------------------------------------------------------------------------
@app.get(f"{BASE}/events")
def list_events() -> Response:
    return json_response(200, events().list(query_params()))


@app.get(f"{BASE}/events/<event_id>")
def get_event(event_id: str) -> Response:
    return json_response(200, events().get(event_id).to_api())


@app.post(f"{BASE}/events/<event_id>/resend")
def resend_event(event_id: str) -> Response:
    return json_response(202, events().resend(event_id, decimal_body(optional=True)).to_api())
