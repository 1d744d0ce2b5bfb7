"""Entitlement access state kept in real time: faults in the aggregate path, late events older than
the period-start snapshot, the scheduled reset sweep, and the domain events each one publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from functions.aggregate import handler as aggregate_handler
from functions.rate import handler as rate_handler
from shared import bootstrap as wiring
from shared.core.timeutil import format_rfc3339
from shared.entitlements import views
from tests.support.harness import Stack

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# Hourly usage periods anchored three hours ago: the current period started at most an hour ago.
ANCHOR = NOW - timedelta(hours=3)


HOURLY_ISSUE_2 = {
    "type": "metered",
    "feature_key": "api",
    "usage_period": {"interval": "PT1H", "anchor": format_rfc3339(ANCHOR)},
    "measure_usage_from": "CURRENT_PERIOD_START",
    "issue": {"amount": 2},
}


class Crash(Exception):
    pass


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def iso(t: datetime) -> str:
    return format_rfc3339(t)


def period_start() -> datetime:
    return ANCHOR + timedelta(hours=int((NOW - ANCHOR) / timedelta(hours=1)))


def call(i: int, at: datetime, subject: str = "acme") -> dict[str, Any]:
    return {"id": f"c{i}", "source": "gw", "type": "call", "subject": subject, "time": iso(at)}


@pytest.fixture
def topic(stack: Stack) -> str:
    """An SQS queue subscribed (raw) to the domain topic; returns its URL."""
    sqs, sns = stack.clients["sqs"], stack.clients["sns"]
    url = sqs.create_queue(QueueName="domain-events-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic_arn = stack.provisioned.env["DOMAIN_TOPIC_ARN"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return str(url)


def domain_events(stack: Stack, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        msgs = stack.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(orjson.loads(m["Body"]))
            stack.clients["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def setup(stack: Stack, body: dict[str, Any] | None = None) -> str:
    meter = stack.request(
        "POST", "/meters", {"key": "calls", "name": "Calls", "aggregation": "count", "event_type": "call"}
    )
    assert meter.status == 201, meter
    feature = stack.request(
        "POST", "/features", {"key": "api", "name": "API", "meter": {"id": meter.json()["id"]}}
    )
    assert feature.status == 201, feature
    customer = stack.request(
        "POST", "/customers", {"key": "acme", "name": "Acme", "usage_attribution": {"subject_keys": ["acme"]}}
    )
    cid = str(customer.json()["id"])
    ent = stack.request(
        "POST",
        f"/customers/{cid}/entitlements",
        body
        or {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "PT1H", "anchor": iso(ANCHOR)},
            "measure_usage_from": iso(ANCHOR),
        },
    )
    assert ent.status == 201, ent
    return cid


def value(stack: Stack, cid: str) -> dict[str, Any]:
    resp = stack.request("GET", f"/customers/{cid}/entitlements/api/value")
    assert resp.status == 200, resp
    return dict(resp.json())


def stored(cid: str) -> Any:
    state = wiring.entitlements().refresher.store.get(cid, "api")
    assert state is not None
    return state


def test_a_failed_refresh_fails_the_batch_and_its_retry_counts_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = setup(stack)
    grant = stack.request(
        "POST",
        f"/customers/{cid}/entitlements/api/grants",
        {"amount": 5, "effective_at": iso(period_start())},
    )
    assert grant.status == 201, grant
    stack.ingest([call(i, NOW) for i in range(3)])
    batches = stack.pending_batches()
    refresher = wiring.entitlements().refresher
    real = refresher.refresh

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash("DynamoDB throttled the access-state write")

    monkeypatch.setattr(refresher, "refresh", crash)
    for batch in batches:
        with pytest.raises(Crash):  # the batch is not acknowledged: Lambda retries it
            aggregate_handler.lambda_handler(batch, None)
    monkeypatch.setattr(refresher, "refresh", real)
    for batch in batches + batches:  # the retry, then a Kinesis redelivery of the same records
        assert aggregate_handler.lambda_handler(batch, None) == {"batchItemFailures": []}
    state = stored(cid)
    assert (state.usage, state.balance, state.has_access) == (3, 2, True)
    assert value(stack, cid)["usage"] == "3"


def test_a_crash_between_publishing_and_storing_republishes_the_same_event(
    stack: Stack, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = setup(stack)
    domain_events(stack, topic)
    stack.ingest([call(1, NOW)])
    batches = stack.pending_batches()
    store = wiring.entitlements().refresher.store
    real_put = store.put

    def crash(state: Any) -> bool:
        raise Crash("killed after publishing")

    monkeypatch.setattr(store, "put", crash)
    for batch in batches:
        with pytest.raises(Crash):
            aggregate_handler.lambda_handler(batch, None)
    monkeypatch.setattr(store, "put", real_put)
    for batch in batches:
        aggregate_handler.lambda_handler(batch, None)
    updates = [e for e in domain_events(stack, topic) if e["type"] == "entitlements.balance.updated"]
    # Published twice (at least once), with one id: the notifier dedupes on it.
    assert len(updates) == 2 and len({e["id"] for e in updates}) == 1
    assert updates[0]["data"]["value"]["usage"] == "1"
    assert stored(cid).usage == 1


def test_a_late_event_older_than_the_period_snapshot_is_folded_in(stack: Stack) -> None:
    # Overage is preserved at resets: usage in an earlier period that no grant covered burns the
    # current period's grant. The grant (100) starts with the current period.
    cid = setup(
        stack,
        {
            "type": "metered",
            "feature_key": "api",
            "usage_period": {"interval": "PT1H", "anchor": iso(ANCHOR)},
            "measure_usage_from": iso(ANCHOR),
            "preserve_overage_at_reset": True,
        },
    )
    grant = {"amount": 100, "effective_at": iso(period_start())}
    assert stack.request("POST", f"/customers/{cid}/entitlements/api/grants", grant).status == 201
    stack.ingest([call(i, NOW) for i in range(30)])
    stack.drain()
    assert (stored(cid).usage, stored(cid).balance) == (30, 70)
    snapshot_at = stored(cid).snapshot["at"]
    # 50 calls arrive late, stamped two hours ago: an earlier period, before the snapshot.
    late = NOW - timedelta(hours=2)
    assert late < period_start()
    stack.ingest([call(100 + i, late) for i in range(50)])
    stack.drain()
    state = stored(cid)
    # The earlier period's 50 calls are overage carried into this period: 100 - 50 - 30.
    assert (state.usage, state.balance, state.overage) == (30, 20, 0)
    # The period-start snapshot was rebuilt: it now carries the earlier period's overage.
    assert state.snapshot["at"] == snapshot_at and state.snapshot["overage"] == "50"
    assert value(stack, cid)["balance"] == "20"


def test_the_sweep_resets_entitlements_without_new_usage(stack: Stack, topic: str) -> None:
    cid = setup(stack, HOURLY_ISSUE_2)
    stack.ingest([call(i, NOW) for i in range(2)])
    stack.drain()
    assert stored(cid).has_access is False
    domain_events(stack, topic)
    ends = stored(cid).period_to
    # The rate function runs the sweep; an hour later (no new usage) the period has ended.
    later = wiring.build_entitlements(clock=FixedClock(ends + timedelta(minutes=1)))
    assert later.sweep() == 1
    state = stored(cid)
    assert (state.has_access, state.usage, state.balance) == (True, 0, 2)
    assert state.period_from == ends
    events = domain_events(stack, topic)
    resets = [e for e in events if e["type"] == "entitlements.reset"]
    assert len(resets) == 1
    assert resets[0]["data"]["previous_period_usage"] == "2"
    assert resets[0]["data"]["value"]["current_usage_period"]["from"] == iso(ends)
    # A second sweep in the same period finds nothing to do; the scheduled handler runs it too.
    assert later.sweep() == 0
    assert rate_handler.lambda_handler({"source": "aws.events"}, None)["entitlements_reset"] == 0


def test_an_access_check_after_the_period_ended_recomputes_on_read(stack: Stack) -> None:
    cid = setup(stack, HOURLY_ISSUE_2)
    stack.ingest([call(i, NOW) for i in range(2)])
    stack.drain()
    assert stored(cid).has_access is False
    ends = stored(cid).period_to
    # Before the sweep gets to it, an access check in the next period sees the reset.
    later = wiring.build_entitlements(clock=FixedClock(ends + timedelta(seconds=5)))
    # (the service returns domain objects; views renders the API's JSON)
    assert views.access(wiring.build_entitlement_service(later).access(cid)) == {
        "data": [{"type": "metered", "feature_key": "api", "has_access": True}]
    }
    assert stored(cid).period_from == ends


def test_events_of_unattributed_subjects_touch_no_entitlement(stack: Stack) -> None:
    cid = setup(stack)
    stack.ingest([call(1, NOW, subject="stranger")])
    stack.drain()
    assert stored(cid).usage == 0


def test_deleting_the_customer_ends_its_entitlements(stack: Stack) -> None:
    cid = setup(stack)
    assert len(stack.request("GET", f"/customers/{cid}/entitlement-access").json()["data"]) == 1
    assert stack.request("DELETE", f"/customers/{cid}").status == 204
    assert stack.request("GET", f"/customers/{cid}/entitlement-access").status == 404
    assert wiring.entitlements().repo.for_customer(cid) == []
    assert wiring.entitlements().refresher.store.get(cid, "api") is None
    assert wiring.entitlements().sweep() == 0  # nothing left for the sweep to bring back


def test_the_hourly_reconcile_restores_a_state_that_was_never_written(stack: Stack) -> None:
    cid = setup(stack)
    ent = wiring.entitlements().repo.for_customer(cid)[0]
    wiring.entitlements().refresher.store.delete(cid, "api", ent.id)  # as if the create's refresh failed
    assert wiring.entitlements().sweep() == 0  # the due index knows nothing of it
    top_of_hour = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "2026-12-01T21:00:00Z"}
    assert rate_handler.lambda_handler(top_of_hour, None)["entitlements_reset"] == 1
    assert stored(cid).entitlement_id == ent.id


def test_a_retried_customer_delete_finishes_ending_its_entitlements(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = setup(stack)
    service = wiring.entitlement_service()
    real = service.end_for_customer

    def crash(customer_id: str) -> int:
        raise Crash("killed after the customer was deleted")

    monkeypatch.setattr(service, "end_for_customer", crash)
    assert stack.request("DELETE", f"/customers/{cid}").status == 500
    assert wiring.entitlements().repo.for_customer(cid) != []  # left active by the crash
    monkeypatch.setattr(service, "end_for_customer", real)
    assert stack.request("DELETE", f"/customers/{cid}").status == 404  # already deleted...
    assert wiring.entitlements().repo.for_customer(cid) == []  # ...and its entitlements ended


def test_a_busy_shards_usage_reaches_the_access_state_before_its_flush(stack: Stack) -> None:
    """A busy shard writes usage behind (flushed every USAGE_FLUSH_SECONDS). The access state and
    the value still count a batch as soon as it is journaled: quotas see usage within the
    batching window, not the flush interval."""
    cid = setup(stack)
    grant = {"amount": 5, "effective_at": iso(period_start())}
    assert stack.request("POST", f"/customers/{cid}/entitlements/api/grants", grant).status == 201
    agg = aggregate_handler.aggregator()
    agg.flush_seconds, agg.busy_records = 3600.0, 0  # every batch busy, no flush due
    try:
        stack.ingest([call(i, NOW) for i in range(4)])
        for batch in stack.pending_batches():
            aggregate_handler.lambda_handler(batch, None)
        assert any(agg.journal.load(s).pending() for s in agg.journal.shards())  # journaled, not flushed
        state = stored(cid)
        assert (state.usage, state.balance, state.has_access) == (4, 1, True)
        assert value(stack, cid)["usage"] == "4"
        stack.ingest([call(10 + i, NOW) for i in range(2)])
        for batch in stack.pending_batches():
            aggregate_handler.lambda_handler(batch, None)
        state = stored(cid)
        assert (state.usage, state.balance, state.has_access) == (6, 0, False)
        # The flush changes what the counters hold, not the totals.
        clock, agg.clock = agg.clock, FixedClock(datetime.now(UTC) + timedelta(hours=2))
        agg.flush_due()
        agg.clock = clock
        assert not any(agg.journal.load(s).pending() for s in agg.journal.shards())
        assert value(stack, cid)["usage"] == "6" and stored(cid).usage == 6
    finally:
        agg.flush_seconds, agg.busy_records = 0.0, 50
