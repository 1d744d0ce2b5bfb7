"""Invoices on a test clock (the third due-work provider of an advance) and their notifications:
`invoice.created` / `invoice.updated` on every status change of a standard invoice, ids stable
across a republish, never for the gathering invoice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from functions.rate import handler as rate_handler
from shared import bootstrap
from shared.rating.models import Period
from tests.support.harness import Stack
from tests.support.invoices import (
    DEC,
    JAN,
    NOV,
    UNIT_1C,
    FakeSource,
    flat_billable,
    setup_catalog,
    usage,
    usage_billable,
)

Drain = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def domain_events(stack: Stack) -> Drain:
    """Every domain event published, through an SQS queue on the topic (the advance trigger too)."""
    sqs, sns = stack.clients["sqs"], stack.clients["sns"]
    url = sqs.create_queue(QueueName="invoice-events-test")["QueueUrl"]
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


def advance(events: list[dict[str, Any]]) -> None:
    """Run the advance as the rate function does when SNS delivers its trigger."""
    for e in events:
        if e["type"] == "test_clock.advance_requested":
            message = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": orjson.dumps(e).decode()}}]}
            rate_handler.lambda_handler(message, None)


def test_an_advance_bills_the_clock_customer_on_its_timeline(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, domain_events: Drain
) -> None:
    setup_catalog(stack)
    clock = stack.request(
        "POST", "/test-clocks", {"frozen_time": "2026-11-01T00:00:00Z", "name": "nov"}
    ).json()
    resp = stack.request("POST", "/customers", {"key": "tick", "name": "Tick", "test_clock_id": clock["id"]})
    cid = resp.json()["id"]
    source = FakeSource(
        {
            cid: [
                flat_billable(cid, "s/default/base/v[0]/period[0]", "10", Period(NOV, DEC)),
                usage_billable(cid, "s/default/tokens/v[0]/period[0]", "tokens", UNIT_1C, Period(NOV, DEC)),
                flat_billable(cid, "s/default/base/v[0]/period[1]", "10", Period(DEC, JAN)),
            ]
        }
    )
    monkeypatch.setattr(bootstrap, "invoice_sources", lambda: [source])
    bootstrap.invoices.cache_clear()
    bootstrap.clock_advancer.cache_clear()
    usage(stack, "tick", "tokens", NOV.replace(day=10), 300)
    domain_events()

    target = {"frozen_time": "2026-12-02T00:00:00Z"}
    assert stack.request("POST", f"/test-clocks/{clock['id']}/advance", target).status == 202
    advance(domain_events())
    assert stack.request("GET", f"/test-clocks/{clock['id']}").json()["status"] == "ready"

    listed = stack.request("GET", f"/invoices?filter[customer_id]={cid}&sort=created_at").json()["data"]
    assert [(i["number"], i["status"], i["issued_at"], i["totals"]["total"]) for i in listed] == [
        # November's fee at Nov 1 (collected after the grace hour), then November's usage (300 x
        # $0.01) with December's fee on Dec 1: each step of the advance landed on its due time.
        ("INV-2026-000001", "paid", "2026-11-01T01:00:00Z", "10.00"),
        ("INV-2026-000002", "paid", "2026-12-01T01:00:00Z", "13.00"),
    ]

    notices = [e for e in domain_events() if e["type"].startswith("invoice.")]
    first = [n for n in notices if n["data"]["id"] == listed[0]["id"]]
    assert [n["data"]["status_details"]["extended_status"] for n in first] == [
        "draft.waiting_for_collection",
        "draft.collecting",
        "draft.validating",
        "draft.syncing",
        "draft.waiting_auto_approval",
        "draft.ready_to_issue",
        "issuing.syncing",
        "issued",
        "payment_processing.pending",
        "paid",
    ]
    assert [n["type"] for n in first] == ["invoice.created"] + ["invoice.updated"] * 9
    assert len(notices) == 20 and len({n["id"] for n in notices}) == 20
    assert all(n["data"]["status"] != "gathering" for n in notices)
    assert first[-1]["data"]["number"] == "INV-2026-000001" and first[-1]["time"] == "2026-11-01T01:00:00Z"


def test_the_scheduled_function_runs_due_work_at_wall_time(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from functions.invoice import handler as invoice_handler

    setup_catalog(stack)
    cid = stack.request("POST", "/customers", {"key": "wall", "name": "Wall"}).json()["id"]
    now = datetime.now(UTC)
    period = Period(now - timedelta(days=3), now - timedelta(hours=2))  # ended 2 h ago: past the grace
    source = FakeSource({cid: [flat_billable(cid, "s/default/base/v[0]/period[0]", "10", period)]})
    monkeypatch.setattr(bootstrap, "invoice_sources", lambda: [source])
    bootstrap.invoices.cache_clear()
    assert invoice_handler.lambda_handler({"source": "aws.events"}, None)["steps"] == 1
    (inv,) = stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()["data"]
    assert inv["status"] == "paid" and inv["totals"]["total"] == "10.00"
    assert invoice_handler.lambda_handler({"source": "aws.events"}, None)["steps"] == 0  # nothing more


def test_a_customer_that_cannot_be_billed_does_not_stop_the_others(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from functions.invoice import handler as invoice_handler

    # No billing profile exists yet: collection can't snapshot one, for any customer.
    a = stack.request("POST", "/customers", {"key": "a", "name": "A"}).json()["id"]
    now = datetime.now(UTC)
    period = Period(now - timedelta(days=3), now - timedelta(hours=2))
    source = FakeSource({a: [flat_billable(a, "s/default/base/v[0]/period[0]", "10", period)]})
    monkeypatch.setattr(bootstrap, "invoice_sources", lambda: [source])
    bootstrap.invoices.cache_clear()
    result = invoice_handler.lambda_handler({"source": "aws.events"}, None)
    assert result["failed_customers"] == 1 and result["steps"] == 0
    setup_catalog(stack, ())  # the profile arrives: the next run bills what was left due
    result = invoice_handler.lambda_handler({"source": "aws.events"}, None)
    assert result["failed_customers"] == 0 and result["steps"] == 1
