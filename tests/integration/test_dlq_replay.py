"""`meterline dlq`: a dead-lettered Kinesis range, replayed in process, ends with exact counts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from functions.aggregate import handler as aggregate_handler
from local.kinesis_poller import EsmConfig, ShardPoller
from meterline_cli import dlq as dead_letters
from meterline_cli import main as cli
from meterline_cli.resources import Resources
from tests.support.harness import Stack

GRANULARITIES = ("PT1M", "PT1H", "P1D", None)
runner = CliRunner()


def _meters(stack: Stack) -> dict[str, str]:
    ids = {}
    for key, aggregation in (("tokens", "sum"), ("calls", "count")):
        body = {"key": key, "name": key, "aggregation": aggregation, "event_type": "prompt"}
        if aggregation == "sum":
            body["value_property"] = "$.tokens"
        resp = stack.request("POST", "/meters", body)
        assert resp.status == 201, resp
        ids[key] = resp.json()["id"]
    return ids


def _events(start: int, n: int, subject: str = "c1") -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "app",
            "type": "prompt",
            "subject": subject,
            "time": f"2026-03-01T10:{i % 3:02d}:00Z",
            "data": {"tokens": i + 1},
        }
        for i in range(start, start + n)
    ]


def _totals(stack: Stack, meter: str) -> set[str]:
    """The meter's total at every granularity (each reads a different counter level)."""
    totals = set()
    for granularity in GRANULARITIES:
        body = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
        if granularity:
            body["granularity"] = granularity
        resp = stack.request("POST", f"/meters/{meter}/query", body)
        assert resp.status == 200, resp
        totals.add(str(sum((Decimal(r["value"]) for r in resp.json()["data"]), Decimal(0))))
    return totals


def _pollers(stack: Stack, handler: Callable[[dict[str, Any], Any], Any]) -> list[ShardPoller]:
    return [
        ShardPoller(
            kinesis=stack.clients["kinesis"],
            sqs=stack.clients["sqs"],
            handler=handler,
            stream_name=stack.provisioned.stream_name,
            stream_arn=stack.provisioned.stream_arn,
            shard_id=shard,
            dlq_url=stack.provisioned.dlq_url,
            config=EsmConfig(max_retries=1, bisect_on_error=False, retry_backoff=0),
            stop=threading.Event(),
            context_factory=lambda _name: None,
        )
        for shard in stack.shard_ids()
    ]


def _failing_after(step_name: str | None) -> Callable[[dict[str, Any], Any], Any]:
    """The aggregate handler, failing every attempt at `step_name` (None: before any write)."""

    def step(name: str) -> None:
        if name == step_name:
            raise RuntimeError(f"injected failure at {name}")

    def handler(event: dict[str, Any], _ctx: Any) -> Any:
        if step_name is None:
            raise RuntimeError("injected failure before any write")
        aggregate_handler.aggregator().process(event, step=step)
        return {"batchItemFailures": []}

    return handler


@pytest.fixture
def local_resources(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Resources:
    p = stack.provisioned
    found = Resources(
        config_table=p.env["CONFIG_TABLE"],
        events_table=p.env["EVENTS_TABLE"],
        usage_table=p.env["USAGE_TABLE"],
        notifications_table=p.env["NOTIFICATIONS_TABLE"],
        stream_name=p.stream_name,
        dlq_url=p.dlq_url,
        topic_arn=p.topic_arn,
        events_archive_bucket=p.env["EVENTS_ARCHIVE_BUCKET"],
    )
    monkeypatch.setattr(cli, "_resources", lambda *_a: found)
    return found


def _dlq_messages(stack: Stack) -> list[dead_letters.DeadLetter]:
    return dead_letters.receive_all(stack.clients["sqs"], stack.provisioned.dlq_url, visibility_timeout=0)


@pytest.mark.parametrize("fault", [None, "counter:1", "counter:3"])
def test_dead_lettered_range_replays_to_exact_counts_and_a_second_replay_changes_nothing(
    stack: Stack, local_resources: Resources, fault: str | None
) -> None:
    _meters(stack)
    events = _events(0, 24)
    assert stack.ingest(events).status == 202
    pollers = _pollers(stack, _failing_after(fault))
    for poller in pollers:
        poller.step()
    letters = _dlq_messages(stack)
    assert sum(x.batch_size for x in letters) == 24
    if fault is None:
        assert _totals(stack, "tokens") == {"0"}  # stored nowhere, counted nowhere
    # else: some or all counters were applied before the failure; the replay must not add them twice

    listed = runner.invoke(cli.app, ["dlq", "list", "--local", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {x["message_id"] for x in json.loads(listed.stdout)} == {x.message_id for x in letters}

    result = runner.invoke(cli.app, ["dlq", "replay", "--local", "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    assert _totals(stack, "tokens") == {str(sum(range(1, 25)))}
    assert _totals(stack, "calls") == {"24"}
    assert _dlq_messages(stack) == []  # deleted once replayed

    # Replaying the very same ranges again (as if a delete had been lost) adds nothing.
    agg = cli._aggregator(local_resources)
    for letter in letters:
        dead_letters.replay(agg, dead_letters.read_range(stack.clients["kinesis"], letter), 7)
    assert _totals(stack, "tokens") == {str(sum(range(1, 25)))}
    assert _totals(stack, "calls") == {"24"}


def test_replay_of_one_message_leaves_the_others(stack: Stack, local_resources: Resources) -> None:
    _meters(stack)
    assert stack.ingest(_events(0, 12)).status == 202
    for poller in _pollers(stack, _failing_after(None)):
        poller.step()
    letters = _dlq_messages(stack)
    assert len(letters) == 2  # one per shard
    chosen = letters[0]
    result = runner.invoke(cli.app, ["dlq", "replay", "--local", "--message-id", chosen.message_id])
    assert result.exit_code == 0, result.output
    assert [x.message_id for x in _dlq_messages(stack)] == [letters[1].message_id]


def test_overtaken_counters_refuse_the_replay_and_keep_the_message(
    stack: Stack, local_resources: Resources
) -> None:
    _meters(stack)
    assert stack.ingest(_events(0, 12)).status == 202
    pollers = _pollers(stack, _failing_after(None))
    for poller in pollers:
        poller.step()
    assert len(_dlq_messages(stack)) == 2
    # The shards move on: later events of the same subject and minutes advance the same counters.
    assert stack.ingest(_events(100, 12)).status == 202
    for poller in pollers:
        poller.handler = aggregate_handler.lambda_handler
        poller.step()
    before = _totals(stack, "tokens")

    refused = runner.invoke(cli.app, ["dlq", "replay", "--local"])
    assert refused.exit_code == 2, refused.output
    assert "moved past this range" in refused.output
    assert len(_dlq_messages(stack)) == 2  # kept for a decision
    assert _totals(stack, "tokens") == before  # nothing written


def test_replay_refuses_when_the_range_is_gone_from_the_stream(
    stack: Stack, local_resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    _meters(stack)
    assert stack.ingest(_events(0, 6)).status == 202
    for poller in _pollers(stack, _failing_after(None)):
        poller.step()
    monkeypatch.setattr(dead_letters, "read_range", lambda *_a, **_k: [])  # trimmed past retention
    result = runner.invoke(cli.app, ["dlq", "replay", "--local"])
    assert result.exit_code == 2
    assert "expired or trimmed" in result.output
    assert len(_dlq_messages(stack)) == 2
