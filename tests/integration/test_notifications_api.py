"""Notification channels, rules and events over the API function (in-process moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.aws import clients as shared_clients
from shared.notifications.signing import SECRET_PATTERN, secret_key
from shared.settings import get_settings
from tests.support.harness import ADMIN, VIEWER, Stack
from tests.support.problems import fields

N = "/notification"


@pytest.fixture
def local_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALLOW_INSECURE_LOOPBACK_WEBHOOKS", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def webhook(stack: Stack, **extra: Any) -> dict[str, Any]:
    body = {"type": "webhook", "name": "ops", "url": "https://hooks.example.com/meterline", **extra}
    resp = stack.request("POST", f"{N}/channels", body)
    assert resp.status == 201, resp
    return resp.json()


def threshold_rule(stack: Stack, channels: list[str], **extra: Any) -> dict[str, Any]:
    body = {
        "type": "entitlements.balance.threshold",
        "name": "80 percent",
        "channels": channels,
        "thresholds": [{"value": 80, "type": "usage_percentage"}, {"value": "1000.5", "type": "NUMBER"}],
        **extra,
    }
    resp = stack.request("POST", f"{N}/rules", body)
    assert resp.status == 201, resp
    return resp.json()


def test_webhook_channel_crud_and_generated_secret(stack: Stack) -> None:
    created = webhook(stack, custom_headers={"X-Team": "billing"})
    assert created["type"] == "webhook" and created["disabled"] is False
    assert created["signing_secret"].startswith("whsec_") and SECRET_PATTERN.match(created["signing_secret"])
    assert len(secret_key(created["signing_secret"])) == 32
    cid = created["id"]
    assert stack.request("GET", f"{N}/channels/{cid}").json() == created
    # Viewers read everything but the secret (they could forge webhooks with it).
    as_viewer = stack.request("GET", f"{N}/channels/{cid}", token=VIEWER).json()
    assert as_viewer == {k: v for k, v in created.items() if k != "signing_secret"}
    listed_by_viewer = stack.request("GET", f"{N}/channels", token=VIEWER).json()["data"]
    assert "signing_secret" not in listed_by_viewer[0]

    put = {"type": "webhook", "name": "ops-2", "url": "https://hooks.example.com/v2", "disabled": True}
    updated = stack.request("PUT", f"{N}/channels/{cid}", put).json()
    assert updated["name"] == "ops-2" and updated["disabled"] is True
    assert updated["signing_secret"] == created["signing_secret"]  # omitted on PUT: kept
    assert updated["custom_headers"] == {}

    listed = stack.request("GET", f"{N}/channels?page[size]=10", token=VIEWER).json()
    assert [c["id"] for c in listed["data"]] == [cid] and listed["meta"]["page"]["total"] == 1
    assert stack.request("DELETE", f"{N}/channels/{cid}").status == 204
    assert stack.request("GET", f"{N}/channels/{cid}").status == 404


def test_sns_channel_and_immutable_type(stack: Stack) -> None:
    arn = "arn:aws:sns:us-east-1:123456789012:billing-alerts"
    resp = stack.request("POST", f"{N}/channels", {"type": "sns", "name": "aws", "topic_arn": arn})
    assert resp.status == 201 and resp.json()["topic_arn"] == arn
    cid = resp.json()["id"]
    change = stack.request(
        "PUT", f"{N}/channels/{cid}", {"type": "webhook", "name": "x", "url": "https://a.b"}
    )
    assert change.status == 400 and fields(change) == ["type"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "url": "https://a.example"}, "type"),
        ({"type": "email", "name": "x"}, "type"),
        ({"type": "webhook", "name": "x"}, "url"),
        ({"type": "webhook", "name": "x", "url": "http://hooks.example.com"}, "url"),
        ({"type": "webhook", "name": "x", "url": "https://10.0.0.7/hook"}, "url"),
        ({"type": "webhook", "name": "x", "url": "https://169.254.169.254/latest"}, "url"),
        (
            {"type": "webhook", "name": "x", "url": "https://a.example", "signing_secret": "short"},
            "signing_secret",
        ),
        (
            {"type": "webhook", "name": "x", "url": "https://a.example", "signing_secret": "=" * 40},
            "signing_secret",
        ),
        (
            {"type": "webhook", "name": "x", "url": "https://a.example", "custom_headers": {"svix-id": "x"}},
            "custom_headers.svix-id",
        ),
        # Header names must be RFC 9110 tokens and values visible ASCII: a CR/LF (header injection),
        # a space in a name or a character outside Latin-1 made every delivery raise in the sender
        # (the event stuck in SENDING, a traceback every retry sweep).
        (
            {
                "type": "webhook",
                "name": "x",
                "url": "https://a.example",
                "custom_headers": {"X-A": "a\r\nX-B: 1"},
            },
            "custom_headers.X-A",
        ),
        (
            {"type": "webhook", "name": "x", "url": "https://a.example", "custom_headers": {"X A": "a"}},
            "custom_headers.X A",
        ),
        (
            {"type": "webhook", "name": "x", "url": "https://a.example", "custom_headers": {"": "a"}},
            "custom_headers.",
        ),
        (
            {
                "type": "webhook",
                "name": "x",
                "url": "https://a.example",
                "custom_headers": {"X-A": "\U0001d11e"},
            },
            "custom_headers.X-A",
        ),
        # A boolean is a JSON boolean: "yes" or 1 is not one (pydantic's lax mode took them).
        ({"type": "webhook", "name": "x", "url": "https://a.example", "disabled": "yes"}, "disabled"),
        (
            {"type": "sns", "name": "x", "topic_arn": "arn:aws:sns:us-east-1:123456789012:t", "disabled": 1},
            "disabled",
        ),
        ({"type": "webhook", "name": "", "url": "https://a.example"}, "name"),
        ({"type": "webhook", "name": "x", "url": "https://a.example", "extra": 1}, "extra"),
        ({"type": "sns", "name": "x", "topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}, "topic_arn"),
    ],
)
def test_channel_validation_names_the_field(stack: Stack, body: dict[str, Any], field: str) -> None:
    resp = stack.request("POST", f"{N}/channels", body)
    assert resp.status == 400, resp
    assert field in fields(resp)


def test_http_loopback_url_only_in_local_mode(stack: Stack, local_mode: None) -> None:
    ok = stack.request(
        "POST", f"{N}/channels", {"type": "webhook", "name": "l", "url": "http://127.0.0.1:9/x"}
    )
    assert ok.status == 201, ok
    remote = stack.request(
        "POST", f"{N}/channels", {"type": "webhook", "name": "r", "url": "http://example.com/"}
    )
    assert remote.status == 400 and fields(remote) == ["url"]


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data", "https://10.0.0.1/hook"])
def test_local_mode_allows_loopback_but_no_other_private_target(
    stack: Stack, local_mode: None, url: str
) -> None:
    created = stack.request("POST", f"{N}/channels", {"type": "webhook", "name": "p", "url": url})
    assert created.status == 400 and fields(created) == ["url"]
    cid = webhook(stack)["id"]
    updated = stack.request("PUT", f"{N}/channels/{cid}", {"type": "webhook", "name": "p", "url": url})
    assert updated.status == 400 and fields(updated) == ["url"]
    assert stack.request("GET", f"{N}/channels/{cid}").json()["url"] == "https://hooks.example.com/meterline"


def test_rule_crud_channel_refs_and_409_on_used_channel(stack: Stack) -> None:
    a, b = webhook(stack)["id"], webhook(stack, name="b")["id"]
    rule = threshold_rule(stack, [a], features=["api_calls"])
    assert rule["thresholds"] == [
        {"value": "80", "type": "usage_percentage"},
        {"value": "1000.5", "type": "usage_value"},  # deprecated NUMBER accepted, decimal kept exact
    ]
    assert rule["channels"] == [{"id": a, "type": "webhook", "name": "ops"}]
    used = stack.request("DELETE", f"{N}/channels/{a}")
    assert used.status == 409 and used.json()["conflicting_entity_ids"] == [rule["id"]]

    # Move the rule to channel b: a becomes deletable, b is now protected.
    body = {
        "type": rule["type"],
        "name": "moved",
        "channels": [b],
        "thresholds": [{"value": 0, "type": "balance_value"}],
    }
    moved = stack.request("PUT", f"{N}/rules/{rule['id']}", body)
    assert moved.status == 200 and moved.json()["channels"][0]["id"] == b
    assert stack.request("DELETE", f"{N}/channels/{b}").status == 409
    assert stack.request("DELETE", f"{N}/channels/{a}").status == 204

    assert stack.request("DELETE", f"{N}/rules/{rule['id']}").status == 204
    assert stack.request("DELETE", f"{N}/channels/{b}").status == 204
    assert stack.request("GET", f"{N}/rules/{rule['id']}").status == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channels": []}, "channels"),
        ({"channels": ["c"] * 6}, "channels"),
        ({"channels": ["01JNOTACHANNEL000000000000"]}, "channels[0]"),
        ({"thresholds": None}, "thresholds"),
        ({"thresholds": [{"value": -1, "type": "usage_value"}]}, "thresholds[0].value"),
        ({"thresholds": [{"value": 5, "type": "fraction"}]}, "thresholds[0].type"),
        ({"type": "invoice.created"}, "thresholds"),
        ({"type": "entitlements.sometimes"}, "type"),
        # Unbounded strings made the rule item larger than DynamoDB takes (400 KB): a 500. Features are
        # feature ids or keys (64 characters at most); a threshold is a number of 38 digits at most.
        ({"features": ["f" * 5000 + str(i) for i in range(100)]}, "features[0]"),
        ({"features": [""]}, "features[0]"),
        ({"thresholds": [{"value": "9" * 39, "type": "usage_value"}]}, "thresholds[0].value"),
        ({"thresholds": [{"value": "1." + "0" * 300_000, "type": "usage_value"}]}, "thresholds[0].value"),
    ],
)
def test_rule_validation_names_the_field(stack: Stack, change: dict[str, Any], field: str) -> None:
    cid = webhook(stack)["id"]
    body = {
        "type": "entitlements.balance.threshold",
        "name": "r",
        "channels": [cid],
        "thresholds": [{"value": 10, "type": "usage_value"}],
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    resp = stack.request("POST", f"{N}/rules", body)
    assert resp.status == 400, resp
    assert field in fields(resp)


def test_rule_type_is_immutable_and_viewer_cannot_write(stack: Stack) -> None:
    cid = webhook(stack)["id"]
    rule = threshold_rule(stack, [cid])
    resp = stack.request(
        "PUT", f"{N}/rules/{rule['id']}", {"type": "invoice.created", "name": "x", "channels": [cid]}
    )
    assert resp.status == 400 and fields(resp) == ["type"]
    assert stack.request("POST", f"{N}/channels", {"type": "sns"}, token=VIEWER).status == 403
    assert stack.request("GET", f"{N}/rules", token=VIEWER).json()["meta"]["page"]["total"] == 1


def test_rule_test_action_creates_an_annotated_event_and_resend(stack: Stack) -> None:
    cid = webhook(stack)["id"]
    other = webhook(stack, name="other")["id"]
    rule = threshold_rule(stack, [cid])
    resp = stack.request("POST", f"{N}/rules/{rule['id']}/test")
    assert resp.status == 201, resp
    event = resp.json()
    assert event["annotations"] == {"notification.rule.test": True}
    assert (
        event["payload"]["id"] == event["id"] and event["payload"]["type"] == "entitlements.balance.threshold"
    )
    assert event["payload"]["data"]["threshold"] == {"value": "80", "type": "usage_percentage"}
    (status,) = event["delivery_status"]
    assert status["state"] == "PENDING" and status["channel"]["id"] == cid and "next_attempt" in status

    got = stack.request("GET", f"{N}/events/{event['id']}", token=VIEWER).json()
    assert got == event
    listed = stack.request("GET", f"{N}/events?filter[rule_id]={rule['id']}").json()
    assert [e["id"] for e in listed["data"]] == [event["id"]]
    assert stack.request("GET", f"{N}/events?filter[channel_id]={other}").json()["data"] == []
    assert (
        stack.request("GET", f"{N}/events?filter[created_at][gte]=2999-01-01T00:00:00Z").json()["data"] == []
    )
    bad = stack.request("GET", f"{N}/events?filter[colour]=red")
    assert bad.status == 400 and fields(bad) == ["filter[colour]"]

    resent = stack.request("POST", f"{N}/events/{event['id']}/resend", {"channels": [cid]})
    assert resent.status == 202
    assert resent.json()["delivery_status"][0]["reason"].startswith("resend requested")
    not_on_event = stack.request("POST", f"{N}/events/{event['id']}/resend", {"channels": [other]})
    assert not_on_event.status == 400 and fields(not_on_event) == ["channels[0]"]
    assert stack.request("POST", f"{N}/events/{event['id']}/resend").status == 202  # body optional
    assert stack.request("POST", f"{N}/events/01JNOSUCHEVENT000000000000/resend").status == 404


def test_channel_deleted_while_a_rule_is_written_is_a_missing_reference(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.notifications.repository import NotificationConfigRepository

    real = webhook(stack)
    ghost = "01JGHOSTCHANNEL00000000000"
    original = NotificationConfigRepository.get_channel
    # Validation sees the channel; by the time the transaction runs it is gone.
    monkeypatch.setattr(
        NotificationConfigRepository,
        "get_channel",
        lambda self, cid: original(self, real["id"]) if cid == ghost else original(self, cid),
    )
    body = {"type": "invoice.created", "name": "r", "channels": [real["id"], ghost]}
    resp = stack.request("POST", f"{N}/rules", body)
    assert resp.status == 400, resp
    (param,) = resp.json()["invalid_parameters"]
    assert (param["field"], param["rule"]) == ("channels[1]", "missing_reference")
    assert stack.request("GET", f"{N}/rules").json()["data"] == []  # nothing half-written
    monkeypatch.undo()
    assert stack.request("DELETE", f"{N}/channels/{real['id']}").status == 204  # no dangling reference


def test_listing_channels_authorises_once_per_request(stack: Stack) -> None:
    """The viewer/admin decision (hide signing secrets) reuses the request's authorisation: one
    token GetItem per request, not one per listed channel."""
    for n in range(3):
        webhook(stack, name=f"ops-{n}")
    token_reads: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("pk", {}).get("S", "").startswith("TOKEN#"):
            token_reads.append(params["Key"]["pk"]["S"])

    events = shared_clients.dynamodb().meta.events
    events.register("provide-client-params.dynamodb.GetItem", count)
    try:
        for token in (VIEWER, ADMIN):
            token_reads.clear()
            listed = stack.request("GET", f"{N}/channels", token=token).json()["data"]
            assert len(listed) == 3
            assert all(("signing_secret" in c) is (token == ADMIN) for c in listed)
            assert len(token_reads) == 1
    finally:
        events.unregister("provide-client-params.dynamodb.GetItem", count)
