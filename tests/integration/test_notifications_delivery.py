"""Domain events -> notification events -> deliveries, on in-process moto with a loopback receiver.

Clocks are injected: the retry schedule is walked by moving the clock, never by sleeping.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from functions.notify import handler as notify_handler
from shared.core.timeutil import Clock, format_rfc3339
from shared.notifications.dispatcher import Dispatcher
from shared.notifications.engine import Engine
from shared.notifications.repository import NotificationConfigRepository
from shared.notifications.retry import RETRY_WINDOW
from shared.notifications.sender import Sender
from shared.notifications.store import Duplicate, NotificationStore, StateRace
from shared.settings import get_settings
from tests.support.harness import Stack
from tests.support.webhook_receiver import Receiver, Reply

N = "/notification"
PERIOD = {"from": "2026-05-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}
NEXT_PERIOD = {"from": "2026-06-01T00:00:00Z", "to": "2026-07-01T00:00:00Z"}


class FakeClock(Clock):
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t


@dataclass
class Env:
    stack: Stack
    receiver: Receiver
    clock: FakeClock
    config: NotificationConfigRepository
    store: NotificationStore
    engine: Engine
    dispatcher: Dispatcher

    def channel(self, path: str, **extra: Any) -> dict[str, Any]:
        body = {"type": "webhook", "name": path, "url": self.receiver.url + path, **extra}
        resp = self.stack.request("POST", f"{N}/channels", body)
        assert resp.status == 201, resp
        return resp.json()

    def rule(self, channels: list[str], **extra: Any) -> dict[str, Any]:
        body = {
            "type": "entitlements.balance.threshold",
            "name": "usage",
            "channels": channels,
            "thresholds": [
                {"value": 80, "type": "usage_percentage"},
                {"value": 90, "type": "usage_percentage"},
            ],
            **extra,
        }
        resp = self.stack.request("POST", f"{N}/rules", body)
        assert resp.status == 201, resp
        return resp.json()

    def event_api(self, event_id: str) -> dict[str, Any]:
        resp = self.stack.request("GET", f"{N}/events/{event_id}")
        assert resp.status == 200, resp
        return resp.json()

    def all_events(self) -> list[dict[str, Any]]:
        return self.stack.request("GET", f"{N}/events?page[size]=1000").json()["data"]


@pytest.fixture
def env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ALLOW_INSECURE_LOOPBACK_WEBHOOKS", "true")
    get_settings.cache_clear()
    notify_handler.components.cache_clear()
    s = get_settings()
    # A little ahead of the wall clock: what the API (real clock) makes due "now" is due here too.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5))
    config = NotificationConfigRepository(s.config_table)
    store = NotificationStore(s.notifications_table)
    sender = Sender(allow_insecure_loopback=True)
    with Receiver() as receiver:
        yield Env(
            stack,
            receiver,
            clock,
            config,
            store,
            Engine(config, store, clock),
            Dispatcher(store, config, sender, clock, rand=lambda: 0.5),
        )
    get_settings.cache_clear()
    notify_handler.components.cache_clear()


def balance_event(
    usage: str,
    balance: str,
    total: str = "100",
    period: dict[str, str] | None = PERIOD,
    at: str = "2026-05-10T12:00:00Z",
    entitlement_type: str = "metered",
    feature_key: str = "api_calls",
) -> dict[str, Any]:
    value = {
        "has_access": True,
        "balance": balance,
        "usage": usage,
        "overage": "0",
        "total_available_grant_amount": total,
        "current_usage_period": period,
    }
    return {
        "id": str(uuid.uuid4()),
        "type": "entitlements.balance.updated",
        "time": at,
        "data": {
            "entitlement": {
                "id": "01JENT00000000000000000000",
                "type": entitlement_type,
                "feature_key": feature_key,
                "is_soft_limit": False,
            },
            "customer": {"id": "01JCUS00000000000000000000"},
            "feature": {"id": "01JFEA00000000000000000000", "key": feature_key},
            "value": value,
            "previous": None,
            "reason": "usage",
        },
    }


def sns_event(domain: dict[str, Any]) -> dict[str, Any]:
    """What Lambda gets from the SNS subscription (as local/sns_poller.py builds it)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "Message": orjson.dumps(domain).decode(),
                    "MessageAttributes": {"type": {"Type": "String", "Value": domain["type"]}},
                },
            }
        ]
    }


def handle(env: Env, domain: dict[str, Any]) -> list[Any]:
    events = env.engine.handle(domain)
    env.dispatcher.deliver([(e, d) for e in events for d in e.deliveries])
    return events


def thresholds_fired(env: Env) -> list[tuple[str, str]]:
    return sorted(
        (e["payload"]["data"]["threshold"]["type"], e["payload"]["data"]["threshold"]["value"])
        for e in env.all_events()
    )


# -- the happy path through the real handler --------------------------------------------------------------
def test_balance_update_is_delivered_signed_through_the_notify_handler(env: Env) -> None:
    channel = env.channel("/hook", custom_headers={"X-Team": "billing"})
    rule = env.rule([channel["id"]])
    domain = balance_event("81", "19")
    assert notify_handler.lambda_handler(sns_event(domain), None) == {"status": "ok", "created": 1}

    (req,) = env.receiver.wait_for("/hook")
    payload = Webhook(channel["signing_secret"]).verify(req.body, req.headers)
    assert req.headers["x-team"] == "billing" and req.headers["content-type"] == "application/json"
    assert req.headers["svix-signature"] == req.headers["webhook-signature"]
    assert payload["type"] == "entitlements.balance.threshold"
    assert req.headers["webhook-id"] == payload["id"]  # the event id is the idempotency key
    assert payload["data"]["threshold"] == {"value": "80", "type": "usage_percentage"}
    assert payload["data"]["value"]["usage"] == "81" and payload["data"]["customer"]["id"]

    event = env.event_api(payload["id"])
    assert event["payload"] == payload and event["rule"]["id"] == rule["id"]
    (status,) = event["delivery_status"]
    assert status["state"] == "SUCCESS" and "next_attempt" not in status
    (attempt,) = status["attempts"]
    assert attempt["state"] == "SUCCESS" and attempt["response"]["status_code"] == 200
    assert attempt["response"]["body"] == "ok" and attempt["response"]["duration_ms"] >= 0


def test_sns_redelivery_of_the_same_domain_event_does_not_double_notify(env: Env) -> None:
    env.rule([env.channel("/hook")["id"]])
    domain = balance_event("81", "19")
    notify_handler.lambda_handler(sns_event(domain), None)
    assert notify_handler.lambda_handler(sns_event(domain), None)["created"] == 0
    assert len(env.all_events()) == 1 and len(env.receiver.wait_for("/hook")) == 1


def test_concurrent_copies_of_a_domain_event_lose_on_the_dedupe_claim(env: Env) -> None:
    rule = env.config.get_rule(env.rule([env.channel("/hook")["id"]])["id"])
    assert rule is not None
    domain = balance_event("81", "19")
    channels = env.config.list_channels()
    # Copy A evaluated, then copy B ran to the end before A wrote: A must find B's claim.
    emissions = env.engine._emissions(rule, channels, domain)
    assert len(handle(env, domain)) == 1
    with pytest.raises(Duplicate):
        env.store.create(domain["id"], rule.id, emissions)
    assert len(env.all_events()) == 1


# -- evaluation -----------------------------------------------------------------------------------------
def test_fires_once_per_threshold_and_kind_and_rearms_on_a_new_period(env: Env) -> None:
    env.rule(
        [env.channel("/hook")["id"]],
        thresholds=[
            {"value": 80, "type": "usage_percentage"},
            {"value": 90, "type": "usage_percentage"},
            {"value": 0, "type": "balance_value"},
        ],
    )
    steps = [
        ("50", "50", PERIOD, 0),  # nothing active
        ("80", "20", PERIOD, 0),  # 80 % of 100 = 80 is not < 80
        ("81", "19", PERIOD, 1),  # 80 %
        ("85", "15", PERIOD, 0),  # still 80 %: already emitted
        ("95", "5", PERIOD, 1),  # 90 %
        ("100", "0", PERIOD, 1),  # balance 0 reached (balance kind); usage kind unchanged
        ("120", "-20", PERIOD, 0),
        ("81", "19", NEXT_PERIOD, 1),  # new usage period: re-armed
    ]
    for i, (usage, balance, period, expected) in enumerate(steps):
        at = f"2026-05-10T12:{i:02d}:00Z" if period is PERIOD else f"2026-06-02T00:{i:02d}:00Z"
        assert len(handle(env, balance_event(usage, balance, period=period, at=at))) == expected, (
            usage,
            period,
        )
    assert thresholds_fired(env) == [
        ("balance_value", "0"),
        ("usage_percentage", "80"),
        ("usage_percentage", "80"),
        ("usage_percentage", "90"),
    ]


def test_one_snapshot_can_fire_both_kinds(env: Env) -> None:
    env.rule(
        [env.channel("/hook")["id"]],
        thresholds=[{"value": 100, "type": "usage_value"}, {"value": 20, "type": "balance_value"}],
    )
    assert len(handle(env, balance_event("150.5", "9.5", total="160"))) == 2
    assert thresholds_fired(env) == [("balance_value", "20"), ("usage_value", "100")]


def test_no_event_when_total_available_is_zero_or_not_metered_or_out_of_scope(env: Env) -> None:
    env.rule(
        [env.channel("/hook")["id"]],
        thresholds=[{"value": 0, "type": "usage_value"}, {"value": 0, "type": "balance_value"}],
        features=["api_calls"],
    )
    assert handle(env, balance_event("5", "-5", total="0")) == []
    assert handle(env, balance_event("5", "-5", entitlement_type="boolean")) == []
    assert handle(env, balance_event("5", "-5", feature_key="storage")) == []
    assert len(handle(env, balance_event("5", "-5"))) == 2  # in scope, total > 0: both value-0 thresholds


def test_a_late_older_snapshot_does_not_fire(env: Env) -> None:
    env.rule([env.channel("/hook")["id"]])
    assert len(handle(env, balance_event("95", "5", at="2026-05-10T12:05:00Z"))) == 1  # 90 %
    assert handle(env, balance_event("81", "19", at="2026-05-10T12:01:00Z")) == []  # older: ignored


def test_disabled_rule_or_channel_produces_nothing(env: Env) -> None:
    hook = env.channel("/hook")
    env.rule([hook["id"]], disabled=True)
    assert handle(env, balance_event("95", "5")) == []
    env.rule([env.channel("/off", disabled=True)["id"]])
    assert handle(env, balance_event("95", "5")) == []


def test_reset_and_invoice_events_are_delivered(env: Env) -> None:
    cid = env.channel("/hook")["id"]
    for kind in ("entitlements.reset", "invoice.created", "invoice.updated"):
        assert (
            env.stack.request("POST", f"{N}/rules", {"type": kind, "name": kind, "channels": [cid]}).status
            == 201
        )
    reset = balance_event("0", "100")
    reset.update(type="entitlements.reset")
    reset["data"]["previous_period_usage"] = "97"
    invoice = {"id": "01JINV00000000000000000000", "status": "issued", "totals": {"total": "12.30"}}
    handle(env, reset)
    handle(
        env,
        {"id": str(uuid.uuid4()), "type": "invoice.created", "time": "2026-06-01T00:00:00Z", "data": invoice},
    )
    handle(
        env, {"id": str(uuid.uuid4()), "type": "unknown.thing", "time": "2026-06-01T00:00:00Z", "data": {}}
    )
    bodies = [orjson.loads(r.body) for r in env.receiver.wait_for("/hook", 2)]
    assert sorted(b["type"] for b in bodies) == ["entitlements.reset", "invoice.created"]
    by_type = {b["type"]: b["data"] for b in bodies}
    assert by_type["invoice.created"] == invoice
    assert set(by_type["entitlements.reset"]) == {"entitlement", "feature", "customer", "value"}


# -- delivery -------------------------------------------------------------------------------------------
def test_retries_with_backoff_for_24_hours_then_failed_and_dead_lettered(env: Env) -> None:
    env.receiver.replies["/down"] = Reply(status=503, body=b"maintenance")
    env.rule([env.channel("/down")["id"]])
    (event,) = handle(env, balance_event("81", "19"))
    start = env.clock.t
    times = [start]
    while True:
        status = env.event_api(event.id)["delivery_status"][0]
        if status["state"] == "FAILED":
            break
        assert status["state"] == "PENDING" and status["reason"].endswith("HTTP 503")
        due = datetime.fromisoformat(status["next_attempt"].replace("Z", "+00:00"))
        env.clock.t = due - timedelta(seconds=1)
        assert env.dispatcher.sweep() == 0  # not due yet
        env.clock.t = due
        assert env.dispatcher.sweep() == 1
        times.append(due)
        assert len(times) < 30
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=240),
    ]
    assert max(gaps) == timedelta(hours=4)  # capped
    assert times[-1] - start >= RETRY_WINDOW
    assert len(status["attempts"]) == len(times) and {
        a["response"]["status_code"] for a in status["attempts"]
    } == {503}
    assert len(env.receiver.on("/down")) == len(times)
    (dead,) = env.store.dead_letters()
    assert dead["event_id"] == event.id and dead["attempts"] == len(times) and "HTTP 503" in dead["reason"]
    assert orjson.loads(dead["payload"]) == event.payload
    assert env.dispatcher.sweep() == 0  # nothing left to do


def test_a_slow_channel_does_not_block_another(env: Env) -> None:
    gate = threading.Event()
    env.receiver.replies["/slow"] = Reply(gate=gate)
    slow, fast = env.channel("/slow")["id"], env.channel("/fast")["id"]
    env.rule([slow, fast])
    (event,) = env.engine.handle(balance_event("81", "19"))
    worker = threading.Thread(
        target=env.dispatcher.deliver, args=([(event, d) for d in event.deliveries],), daemon=True
    )
    worker.start()
    try:
        assert env.receiver.wait_for("/slow") and env.receiver.wait_for("/fast")
        # The fast channel completes while the slow endpoint still holds its request open.
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while env.store.delivery(event.id, fast).state != "SUCCESS":  # type: ignore[union-attr]
            assert datetime.now(UTC) < deadline, "fast channel waited for the slow one"
            threading.Event().wait(0.01)
        assert not gate.is_set() and env.store.delivery(event.id, slow).state == "SENDING"  # type: ignore[union-attr]
    finally:
        gate.set()
        worker.join(20)
    assert env.store.delivery(event.id, slow).state == "SUCCESS"  # type: ignore[union-attr]


def test_redirects_are_not_followed(env: Env) -> None:
    with Receiver() as elsewhere:
        env.receiver.replies["/moved"] = Reply(status=302, headers={"Location": elsewhere.url + "/stolen"})
        env.rule([env.channel("/moved")["id"]])
        (event,) = handle(env, balance_event("81", "19"))
        status = env.event_api(event.id)["delivery_status"][0]
        assert elsewhere.requests == []
    assert status["state"] == "PENDING"  # a failed attempt: retried later, never followed
    (attempt,) = status["attempts"]
    assert attempt["response"]["status_code"] == 302 and "not followed" in attempt["response"]["body"]


def test_http_loopback_is_refused_in_aws_mode_without_retry(env: Env) -> None:
    env.rule([env.channel("/hook")["id"]])
    events = env.engine.handle(balance_event("81", "19"))
    strict = Dispatcher(env.store, env.config, Sender(allow_insecure_loopback=False), env.clock)
    strict.deliver([(e, d) for e in events for d in e.deliveries])
    status = env.event_api(events[0].id)["delivery_status"][0]
    assert status["state"] == "FAILED" and "https" in status["reason"]
    assert env.receiver.requests == [] and len(env.store.dead_letters()) == 1


def test_a_header_the_http_client_refuses_is_a_failed_attempt_not_a_crash(env: Env) -> None:
    # A channel stored before header names and values were checked (or written around the API):
    # http.client raises ValueError on a CR/LF, which is no urllib3 error. It used to escape the
    # sender, leaving the event in SENDING and a traceback at every retry sweep.
    created = env.channel("/hook")
    stored = env.config.get_channel(created["id"])
    assert stored is not None
    stored.custom_headers = {"X-A": "a\r\nX-Injected: 1"}
    env.config.put_channel(stored, create=False)
    env.config.bump_version()
    env.rule([created["id"]])
    (event,) = handle(env, balance_event("81", "19"))
    status = env.event_api(event.id)["delivery_status"][0]
    assert status["state"] == "FAILED", status
    assert "header" in status["reason"]
    assert env.receiver.requests == [] and len(env.store.dead_letters()) == 1


def test_sns_channel_publishes_the_payload(env: Env) -> None:
    sns, sqs = env.stack.clients["sns"], env.stack.clients["sqs"]
    topic = sns.create_topic(Name="customer-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="customer-alerts-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    resp = env.stack.request("POST", f"{N}/channels", {"type": "sns", "name": "aws", "topic_arn": topic})
    env.rule([resp.json()["id"]])
    (event,) = handle(env, balance_event("81", "19"))
    (msg,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert orjson.loads(msg["Body"]) == event.payload
    assert env.event_api(event.id)["delivery_status"][0]["state"] == "SUCCESS"


def test_rule_test_and_resend_are_sent_by_the_retry_sweep(env: Env) -> None:
    channel = env.channel("/hook")
    rule = env.rule([channel["id"]])
    test_event = env.stack.request("POST", f"{N}/rules/{rule['id']}/test").json()
    assert env.dispatcher.sweep() == 1
    (req,) = env.receiver.wait_for("/hook")
    assert Webhook(channel["signing_secret"]).verify(req.body, req.headers)["id"] == test_event["id"]
    assert env.event_api(test_event["id"])["delivery_status"][0]["state"] == "SUCCESS"

    assert env.stack.request("POST", f"{N}/events/{test_event['id']}/resend").status == 202
    assert env.dispatcher.sweep() == 1
    assert len(env.receiver.wait_for("/hook", 2)) == 2
    status = env.event_api(test_event["id"])["delivery_status"][0]
    assert status["state"] == "SUCCESS" and [a["state"] for a in status["attempts"]] == ["SUCCESS", "SUCCESS"]


def test_scheduled_event_runs_the_sweep_in_the_handler(env: Env) -> None:
    rule = env.rule([env.channel("/hook")["id"]])
    env.stack.request("POST", f"{N}/rules/{rule['id']}/test")
    scheduled = {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": format_rfc3339(env.clock.t),
    }
    assert notify_handler.lambda_handler(scheduled, None) == {"status": "swept", "due": 1}
    assert len(env.receiver.wait_for("/hook")) == 1


def test_two_concurrent_snapshots_cannot_both_emit_the_same_threshold(env: Env) -> None:
    rule = env.config.get_rule(env.rule([env.channel("/hook")["id"]])["id"])
    assert rule is not None
    first, second = balance_event("81", "19"), balance_event("82", "18", at="2026-05-10T12:00:01Z")
    pending = env.engine._emissions(rule, env.config.list_channels(), first)  # evaluated, not yet written
    assert len(handle(env, second)) == 1  # the other snapshot wrote the state first
    with pytest.raises(StateRace):
        env.store.create(first["id"], rule.id, pending)
    assert handle(env, first) == []  # re-evaluated: 80 % was already emitted
    assert thresholds_fired(env) == [("usage_percentage", "80")]


def test_events_filter_by_feature_and_customer(env: Env) -> None:
    env.rule([env.channel("/hook")["id"]])
    (event,) = handle(env, balance_event("81", "19"))
    for query, expected in [
        ("filter[feature]=api_calls", [event.id]),
        ("filter[feature]=01JFEA00000000000000000000", [event.id]),
        ("filter[feature][oeq]=storage,api_calls", [event.id]),
        ("filter[feature]=storage", []),
        ("filter[customer_id]=01JCUS00000000000000000000", [event.id]),
        ("filter[customer_id]=01JCUSOTHER000000000000000", []),
    ]:
        resp = env.stack.request("GET", f"{N}/events?{query}")
        assert [e["id"] for e in resp.json()["data"]] == expected, query
