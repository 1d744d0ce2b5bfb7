"""End to end over real HTTP: `python -m local`, a webhook channel + rule via the API, a domain event
published to the moto topic, and a signed request arriving at a receiver on loopback."""

from __future__ import annotations

import time
import uuid

import boto3
import orjson
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e


def test_domain_event_reaches_a_webhook_signed_and_shows_success(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter/notification"
    auth = {"Authorization": f"Bearer {local_stack['METERLINE_TOKEN']}"}
    with Receiver() as receiver:
        channel = requests.post(
            f"{base}/channels",
            headers=auth,
            json={"type": "webhook", "name": "e2e", "url": receiver.url + "/hook"},
            timeout=10,
        )
        assert channel.status_code == 201, channel.text
        rule = requests.post(
            f"{base}/rules",
            headers=auth,
            json={
                "type": "entitlements.balance.threshold",
                "name": "80 percent",
                "channels": [channel.json()["id"]],
                "thresholds": [{"value": 80, "type": "usage_percentage"}],
            },
            timeout=10,
        )
        assert rule.status_code == 201, rule.text

        # What the entitlement engine publishes (it may not be on this branch): same topic, same shape.
        sns = boto3.client(
            "sns",
            endpoint_url=local_stack["METERLINE_MOTO_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        topic = sns.create_topic(Name="meterline-domain-events")[
            "TopicArn"
        ]  # idempotent: the runtime's topic
        domain = {
            "id": str(uuid.uuid4()),
            "type": "entitlements.balance.updated",
            "time": "2026-05-10T12:00:00Z",
            "data": {
                "entitlement": {
                    "id": "01JENT0000000000000000E2E0",
                    "type": "metered",
                    "feature_key": "api_calls",
                    "is_soft_limit": False,
                },
                "customer": {"id": "01JCUS0000000000000000E2E0"},
                "feature": {"id": "01JFEA0000000000000000E2E0", "key": "api_calls"},
                "value": {
                    "has_access": True,
                    "balance": "150",
                    "usage": "850",
                    "overage": "0",
                    "total_available_grant_amount": "1000",
                    "current_usage_period": {"from": "2026-05-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"},
                },
                "previous": None,
                "reason": "usage",
            },
        }
        sns.publish(
            TopicArn=topic,
            Message=orjson.dumps(domain).decode(),
            MessageAttributes={"type": {"DataType": "String", "StringValue": domain["type"]}},
        )

        got = receiver.wait_for("/hook", timeout=10)
        assert len(got) == 1, "no webhook within 10 s"
        payload = Webhook(channel.json()["signing_secret"]).verify(got[0].body, got[0].headers)
        assert payload["type"] == "entitlements.balance.threshold"
        assert payload["data"]["threshold"] == {"value": "80", "type": "usage_percentage"}

    state = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        event = requests.get(f"{base}/events/{payload['id']}", headers=auth, timeout=10)
        assert event.status_code == 200, event.text
        state = event.json()["delivery_status"][0]["state"]
        if state == "SUCCESS":
            break
        time.sleep(0.05)
    assert state == "SUCCESS"
    listed = requests.get(
        f"{base}/events", headers=auth, params={"filter[rule_id]": rule.json()["id"]}, timeout=10
    )
    assert [e["id"] for e in listed.json()["data"]] == [payload["id"]]


def test_usage_crossing_a_threshold_is_notified_from_the_real_pipeline(local_stack: dict[str, str]) -> None:
    """Ingest -> aggregate -> entitlement refresh -> domain event -> notify -> signed webhook."""
    api = local_stack["METERLINE_URL"] + "/v3/openmeter"
    auth = {"Authorization": f"Bearer {local_stack['METERLINE_TOKEN']}"}

    def post(path: str, body: object, status: int = 201) -> dict[str, object]:
        resp = requests.post(f"{api}{path}", headers=auth, json=body, timeout=10)
        assert resp.status_code == status, resp.text
        return dict(resp.json()) if resp.text else {}

    meter = post(
        "/meters",
        {
            "key": "tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "llm",
            "value_property": "$.tokens",
        },
    )
    post("/features", {"key": "llm_tokens", "name": "LLM tokens", "meter": {"id": meter["id"]}})
    customer = post(
        "/customers",
        {"key": "initech", "name": "Initech", "usage_attribution": {"subject_keys": ["initech"]}},
    )
    post(
        f"/customers/{customer['id']}/entitlements",
        {
            "type": "metered",
            "feature_key": "llm_tokens",
            "usage_period": {"interval": "P1M"},
            "issue": {"amount": 1000},
        },
    )
    with Receiver() as receiver:
        channel = post(
            "/notification/channels", {"type": "webhook", "name": "quota", "url": receiver.url + "/quota"}
        )
        post(
            "/notification/rules",
            {
                "type": "entitlements.balance.threshold",
                "name": "quota warnings",
                "channels": [channel["id"]],
                "features": ["llm_tokens"],
                "thresholds": [
                    {"value": 80, "type": "usage_percentage"},
                    {"value": 100, "type": "usage_percentage"},
                ],
            },
        )
        events = [
            {
                "specversion": "1.0",
                "id": f"llm-{i}",
                "source": "gw",
                "type": "llm",
                "subject": "initech",
                "data": {"tokens": 300},
            }
            for i in range(3)
        ]
        resp = requests.post(
            f"{api}/events",
            headers={**auth, "Content-Type": "application/cloudevents-batch+json"},
            json=events,
            timeout=10,
        )
        assert resp.status_code == 202, resp.text
        got = receiver.wait_for("/quota", timeout=20)
        assert len(got) == 1, "no webhook within 20 s"
        payload = Webhook(str(channel["signing_secret"])).verify(got[0].body, got[0].headers)
        # 900 of 1,000 used: the 80 % threshold is the most advanced active one.
        assert payload["type"] == "entitlements.balance.threshold"
        assert payload["data"]["threshold"] == {"value": "80", "type": "usage_percentage"}
        assert payload["data"]["value"]["usage"] == "900"
        assert payload["data"]["customer"]["id"] == customer["id"]
