"""Test clocks over HTTP: create, advance (run by the rate function from the SNS trigger), status;
a customer on a clock lives on its time (its entitlement resets when the clock crosses the usage
period end, one reset per period) while a customer on no clock is unaffected; bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from functions.rate import handler as rate_handler
from local.lambda_context import new_context
from shared.core.timeutil import format_rfc3339
from tests.support.harness import VIEWER, Stack
from tests.support.problems import problem

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# The clock's day: well in the past, so usage stamped at the clock's time is accepted by ingest.
D0 = (NOW - timedelta(days=30)).replace(hour=0, minute=0)
FROZEN = D0 + timedelta(hours=12)


def iso(t: datetime) -> str:
    return format_rfc3339(t)


@pytest.fixture
def trigger_queue(stack: Stack) -> str:
    """An SQS queue on the domain topic, filtered as the rate function's subscription is."""
    sqs, sns = stack.clients["sqs"], stack.clients["sns"]
    url = sqs.create_queue(QueueName="rate-trigger-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.provisioned.env["DOMAIN_TOPIC_ARN"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicy": orjson.dumps({"type": ["test_clock.advance_requested"]}).decode(),
        },
    )
    return str(url)


def run_triggers(stack: Stack, url: str) -> list[dict[str, Any]]:
    """Deliver the queued trigger messages to the rate function as SNS would; its results."""
    results = []
    while msgs := stack.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in msgs:
            event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": m["Body"]}}]}
            results.append(rate_handler.lambda_handler(event, None))
            stack.clients["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return results


def create_clock(stack: Stack, at: datetime = FROZEN, name: str = "rehearsal") -> dict[str, Any]:
    resp = stack.request("POST", "/test-clocks", {"frozen_time": iso(at), "name": name})
    assert resp.status == 201, resp
    return dict(resp.json())


def customer(stack: Stack, key: str, clock_id: str | None = None) -> str:
    body: dict[str, Any] = {"key": key, "name": key, "usage_attribution": {"subject_keys": [key]}}
    if clock_id:
        body["test_clock_id"] = clock_id
    resp = stack.request("POST", "/customers", body)
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def metered(stack: Stack, cid: str, anchor: datetime) -> None:
    resp = stack.request(
        "POST",
        f"/customers/{cid}/entitlements",
        {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "P1D", "anchor": iso(anchor)},
            "measure_usage_from": iso(anchor),
            "issue": {"amount": 2},
        },
    )
    assert resp.status == 201, resp


def access(stack: Stack, cid: str) -> dict[str, Any]:
    resp = stack.request("GET", f"/customers/{cid}/entitlement-access")
    assert resp.status == 200, resp
    return dict(next(e for e in resp.json()["data"] if e["feature_key"] == "api"))


def calls(subject: str, at: datetime, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{subject}-{at.isoformat()}-{i}",
            "source": "t",
            "type": "call",
            "subject": subject,
            "time": iso(at),
        }
        for i in range(n)
    ]


def feature(stack: Stack) -> None:
    meter = stack.request(
        "POST", "/meters", {"key": "calls", "name": "Calls", "aggregation": "count", "event_type": "call"}
    )
    assert meter.status == 201, meter
    resp = stack.request(
        "POST", "/features", {"key": "api", "name": "API", "meter": {"id": meter.json()["id"]}}
    )
    assert resp.status == 201, resp


def test_clock_lifecycle(stack: Stack, trigger_queue: str) -> None:
    clock = create_clock(stack)
    assert clock["status"] == "ready" and clock["frozen_time"] == iso(FROZEN) and clock["customer_count"] == 0
    assert stack.request("GET", f"/test-clocks/{clock['id']}").json() == clock
    listed = stack.request("GET", "/test-clocks?page[size]=10", token=VIEWER).json()
    assert [c["id"] for c in listed["data"]] == [clock["id"]] and listed["meta"]["page"]["total"] == 1

    target = FROZEN + timedelta(days=1)
    resp = stack.request("POST", f"/test-clocks/{clock['id']}/advance", {"frozen_time": iso(target)})
    assert resp.status == 202, resp
    body = resp.json()
    assert body["status"] == "advancing" and body["frozen_time"] == iso(FROZEN)
    assert body["status_details"] == {"advancing": {"target_frozen_time": iso(target)}}
    # While advancing, another advance is refused, and so is a new customer on the clock.
    problem(stack.request("POST", f"/test-clocks/{clock['id']}/advance", {"frozen_time": iso(target)}), 409)
    late = {"key": "late", "name": "Late", "test_clock_id": clock["id"]}
    problem(stack.request("POST", "/customers", late), 409)

    assert [r["test_clocks"] for r in run_triggers(stack, trigger_queue)] == [{clock["id"]: "ready"}]
    done = stack.request("GET", f"/test-clocks/{clock['id']}").json()
    assert done["status"] == "ready" and done["frozen_time"] == iso(target) and "status_details" not in done

    assert stack.request("DELETE", f"/test-clocks/{clock['id']}").status == 204
    problem(stack.request("GET", f"/test-clocks/{clock['id']}"), 404)


def test_a_bound_customer_lives_on_its_clock_and_resets_when_it_crosses_the_period_end(
    stack: Stack, trigger_queue: str, topic_events: Any
) -> None:
    feature(stack)
    clock = create_clock(stack)
    bound = customer(stack, "bound", clock["id"])
    free = customer(stack, "free")
    got = stack.request("GET", f"/customers/{bound}").json()
    # Created at the clock's time, as Stripe's test-clock customers are.
    assert got["test_clock_id"] == clock["id"] and got["created_at"] == iso(FROZEN)
    assert "test_clock_id" not in stack.request("GET", f"/customers/{free}").json()
    assert stack.request("GET", f"/test-clocks/{clock['id']}").json()["customer_count"] == 1

    today = NOW.replace(hour=0, minute=0)
    metered(stack, bound, D0)
    metered(stack, free, today)
    # Both use up their 2 calls: in the clock's morning, and in wall time's today.
    assert stack.ingest(calls("bound", D0 + timedelta(hours=1), 2)).status == 202
    assert stack.ingest(calls("free", NOW - timedelta(minutes=1), 2)).status == 202
    stack.drain()
    before_bound, before_free = access(stack, bound), access(stack, free)
    assert before_bound["has_access"] is False and before_free["has_access"] is False
    # The bound customer's period is the clock's day, not today.
    value = stack.request("GET", f"/customers/{bound}/entitlements/api/value").json()
    assert value["usage"] == "2" and value["current_usage_period"]["from"] == iso(D0)
    topic_events()  # (forget the events so far)

    # Across two period ends: one reset per period, in order, at the clock's instants.
    target = D0 + timedelta(days=2, hours=6)
    resp = stack.request("POST", f"/test-clocks/{clock['id']}/advance", {"frozen_time": iso(target)})
    assert resp.status == 202, resp
    run_triggers(stack, trigger_queue)
    assert stack.request("GET", f"/test-clocks/{clock['id']}").json()["status"] == "ready"

    after = access(stack, bound)
    assert after["has_access"] is True
    value = stack.request("GET", f"/customers/{bound}/entitlements/api/value").json()
    assert value["usage"] == "0" and value["current_usage_period"] == {
        "from": iso(D0 + timedelta(days=2)),
        "to": iso(D0 + timedelta(days=3)),
    }
    resets = [e for e in topic_events() if e["type"] == "entitlements.reset"]
    assert [(e["time"], e["data"]["customer"]["id"]) for e in resets] == [
        (iso(D0 + timedelta(days=1)), bound),
        (iso(D0 + timedelta(days=2)), bound),
    ]
    # The customer on no clock is untouched: same period, still out of calls.
    assert access(stack, free) == before_free

    # The wall-clock sweep leaves the bound customer alone (its state is not in the due index).
    assert rate_handler.lambda_handler({"source": "aws.events"}, None)["entitlements_reset"] == 0
    assert access(stack, bound) == after

    # Usage stamped on the clock's new day counts in its new period.
    assert stack.ingest(calls("bound", D0 + timedelta(days=2, hours=1), 2)).status == 202
    stack.drain()
    assert access(stack, bound)["has_access"] is False


def test_a_paused_advance_is_resumed_by_the_schedule(stack: Stack, trigger_queue: str) -> None:
    feature(stack)
    clock = create_clock(stack)
    bound = customer(stack, "bound", clock["id"])
    metered(stack, bound, D0)
    target = D0 + timedelta(days=3)
    assert (
        stack.request("POST", f"/test-clocks/{clock['id']}/advance", {"frozen_time": iso(target)}).status
        == 202
    )

    # The invocation is about to time out: the runner stops after its first step.
    out_of_time = new_context("meterline-rate", timeout_s=1.0)
    event = {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": m["Body"]}}
            for m in stack.clients["sqs"].receive_message(QueueUrl=trigger_queue)["Messages"]
        ]
    }
    assert rate_handler.lambda_handler(event, out_of_time)["test_clocks"] == {clock["id"]: "paused"}
    paused = stack.request("GET", f"/test-clocks/{clock['id']}").json()
    assert paused["status"] == "advancing" and paused["frozen_time"] == iso(FROZEN)
    # The scheduled run resumes every advancing clock.
    assert rate_handler.lambda_handler({"source": "aws.events"}, None)["test_clocks"] == {
        clock["id"]: "ready"
    }
    done = stack.request("GET", f"/test-clocks/{clock['id']}").json()
    assert done["status"] == "ready" and done["frozen_time"] == iso(target)
    value = stack.request("GET", f"/customers/{bound}/entitlements/api/value").json()
    assert value["current_usage_period"]["from"] == iso(D0 + timedelta(days=3))


# -- bad input --------------------------------------------------------------------------------------
def test_bad_input_is_problem_json_naming_the_field(stack: Stack) -> None:
    problem(stack.request("POST", "/test-clocks", {}), 400, "frozen_time")
    problem(stack.request("POST", "/test-clocks", {"frozen_time": "yesterday"}), 400, "frozen_time")
    problem(
        stack.request("POST", "/test-clocks", {"frozen_time": "1969-12-31T00:00:00Z"}), 400, "frozen_time"
    )
    problem(stack.request("POST", "/test-clocks", {"frozen_time": iso(FROZEN), "x": 1}), 400, "x")
    problem(stack.request("POST", "/test-clocks", {"frozen_time": iso(FROZEN), "name": ""}), 400, "name")
    clock = create_clock(stack)
    cid = clock["id"]
    # Backwards or standing still: 400 naming frozen_time, nothing changed.
    for at in (FROZEN - timedelta(seconds=1), FROZEN):
        problem(
            stack.request("POST", f"/test-clocks/{cid}/advance", {"frozen_time": iso(at)}), 400, "frozen_time"
        )
    problem(stack.request("POST", f"/test-clocks/{cid}/advance", {}), 400, "frozen_time")
    assert stack.request("GET", f"/test-clocks/{cid}").json() == clock
    # Unknown clocks.
    unknown = "01JAAAAAAAAAAAAAAAAAAAAAAA"
    problem(stack.request("GET", f"/test-clocks/{unknown}"), 404)
    problem(stack.request("GET", "/test-clocks/not-a-ulid"), 404)
    problem(stack.request("POST", f"/test-clocks/{unknown}/advance", {"frozen_time": iso(NOW)}), 404)
    problem(stack.request("DELETE", f"/test-clocks/{unknown}"), 404)
    body = {"key": "c", "name": "c", "test_clock_id": unknown}
    problem(stack.request("POST", "/customers", body), 400, "test_clock_id")
    problem(stack.request("POST", "/customers", {**body, "test_clock_id": "nope"}), 400, "test_clock_id")
    assert stack.request("GET", "/customers").json()["data"] == []  # nothing written
    # A clock with customers is not deleted; once they are, it is.
    c = customer(stack, "on-clock", cid)
    problem(stack.request("DELETE", f"/test-clocks/{cid}"), 409)
    # The binding is set at creation only.
    problem(
        stack.request("PUT", f"/customers/{c}", {"name": "x", "test_clock_id": cid}), 400, "test_clock_id"
    )
    assert stack.request("DELETE", f"/customers/{c}").status == 204
    assert stack.request("GET", f"/test-clocks/{cid}").json()["customer_count"] == 0
    assert stack.request("DELETE", f"/test-clocks/{cid}").status == 204
    # Viewers read, admins write.
    problem(stack.request("POST", "/test-clocks", {"frozen_time": iso(FROZEN)}, token=VIEWER), 403)


@pytest.fixture
def topic_events(stack: Stack) -> Any:
    sqs, sns = stack.clients["sqs"], stack.clients["sns"]
    url = sqs.create_queue(QueueName="domain-events-clock-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.provisioned.env["DOMAIN_TOPIC_ARN"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )

    def drain() -> list[dict[str, Any]]:
        out = []
        while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for m in msgs:
                out.append(orjson.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    return drain
