"""The aggregate function writes only what is new: existing unique_count members and subject-index
items are learnt by a read and not rewritten, a minute's values go into one member set, a counter
costs two items, and a new subject one index item per event type, not per meter (issue 12); the
known-subjects memory is bounded. Subjects indexed per meter by the previous release are still
found."""

from __future__ import annotations

from collections import Counter
from typing import Any

from functions.aggregate import handler as aggregate_handler
from shared import bootstrap
from shared.aws import clients
from shared.usage.aggregator import RecentSet
from shared.usage.subjects import index_pk, indexed_pairs, legacy_index_pk
from tests.support.harness import Stack


def usage_puts(stack: Stack, events: list[dict[str, Any]]) -> Counter[str]:
    """Items written to the usage table while `events` are aggregated: puts by key prefix (U#, S#),
    updates as "U# set" (a minute's member set) or "counter <level>"; "U# asked" / "S# asked":
    member and subject-index lookups. The usage journal's own items (journal.py) are not counted."""
    puts: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        for requests in params.get("RequestItems", {}).values():
            for req in requests:
                pk = req["PutRequest"]["Item"]["pk"]["S"]
                if pk[:2] in ("U#", "S#"):
                    puts[pk[:2]] += 1

    def lookup(params: dict[str, Any], **_: Any) -> None:
        for request in params.get("RequestItems", {}).values():
            for key in request["Keys"]:
                if key["pk"]["S"][:2] in ("U#", "S#"):
                    puts[f"{key['pk']['S'][:2]} asked"] += 1

    def update(params: dict[str, Any], **_: Any) -> None:
        key = params["Key"]
        if key["pk"]["S"].startswith("U#"):
            puts["U# set"] += 1
        elif "usage" in params["TableName"] and not key["pk"]["S"].startswith("JSTATE"):  # journal.py
            puts[f"counter {key['sk']['S'][0]}"] += 1

    events_hook = clients.dynamodb().meta.events
    events_hook.register("before-parameter-build.dynamodb.BatchWriteItem", count)
    events_hook.register("before-parameter-build.dynamodb.UpdateItem", update)
    events_hook.register("before-parameter-build.dynamodb.BatchGetItem", lookup)
    try:
        stack.ingest(events)
        stack.drain()
    finally:
        events_hook.unregister("before-parameter-build.dynamodb.BatchWriteItem", count)
        events_hook.unregister("before-parameter-build.dynamodb.UpdateItem", update)
        events_hook.unregister("before-parameter-build.dynamodb.BatchGetItem", lookup)
    return puts


def ev(i: int, user: str, subject: str = "acme") -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "source": "t",
        "type": "usage",
        "subject": subject,
        "time": f"2026-05-01T10:{i:02d}:00Z",
        "data": {"user": user},
    }


def test_members_and_subjects_that_exist_are_not_written_again(stack: Stack) -> None:
    resp = stack.request(
        "POST",
        "/meters",
        {
            "key": "users",
            "name": "users",
            "aggregation": "unique_count",
            "event_type": "usage",
            "value_property": "$.user",
        },
    )
    assert resp.status == 201, resp
    first = usage_puts(stack, [ev(0, "u1")])
    # The day's member, the minute's member set, one subject-index item (no hour member: an hour
    # is the union of its minutes' sets); a subject indexed just now has no members to look up.
    assert first == {"U#": 1, "U# set": 1, "S#": 1, "S# asked": 1}
    # A new minute with the same user: only the minute's set is written (the day member exists).
    aggregate_handler.aggregator.cache_clear()  # a cold start: nothing remembered in memory
    second = usage_puts(stack, [ev(20, "u1")])
    assert second == {"U# set": 1, "U# asked": 1, "S# asked": 1}
    # Warm: the subject is remembered, not even asked.
    third = usage_puts(stack, [ev(30, "u1")])
    assert third == {"U# set": 1, "U# asked": 1}
    # A new user in the next hour: its day member and its minute's set.
    fourth = usage_puts(stack, [{**ev(40, "u2"), "time": "2026-05-01T11:02:00Z"}])
    assert fourth == {"U#": 1, "U# set": 1, "U# asked": 1}
    meter_id = resp.json()["id"]
    day = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"}
    data = stack.request("POST", f"/meters/{meter_id}/query", day).json()["data"]
    assert [r["value"] for r in data] == ["2"]
    # Hours come from the minutes' sets: u1 in 10:00 (three minutes, counted once), u2 in 11:00.
    hours = {**day, "granularity": "PT1H"}
    data = stack.request("POST", f"/meters/{meter_id}/query", hours).json()["data"]
    assert [(r["from"], r["value"]) for r in data] == [
        ("2026-05-01T10:00:00Z", "1"),
        ("2026-05-01T11:00:00Z", "1"),
    ]


def test_an_additive_counter_writes_its_hour_and_day_item_once_per_batch(stack: Stack) -> None:
    """Minutes are slots of the hour item and hours slots of the day item: two writes per counter,
    however many minutes of the hour a batch spans."""
    resp = stack.request(
        "POST", "/meters", {"key": "calls", "name": "calls", "aggregation": "count", "event_type": "usage"}
    )
    assert resp.status == 201, resp
    writes = usage_puts(stack, [ev(i, "u1") for i in range(0, 12, 5)])  # 10:00, 10:05, 10:10
    # One hour item and one day item per shard's batch: no minute items, no per-minute writes.
    assert set(writes) == {"counter H", "counter D", "S#", "S# asked"}
    assert writes["counter H"] == writes["counter D"] <= len(stack.shard_ids())
    hours = {"from": "2026-05-01T10:00:00Z", "to": "2026-05-01T11:00:00Z", "granularity": "PT1M"}
    data = stack.request("POST", f"/meters/{resp.json()['id']}/query", hours).json()["data"]
    assert [(r["from"], r["value"]) for r in data] == [
        ("2026-05-01T10:00:00Z", "1"),
        ("2026-05-01T10:05:00Z", "1"),
        ("2026-05-01T10:10:00Z", "1"),
    ]


def test_recent_set_forgets_the_least_recently_seen() -> None:
    known = RecentSet[str](2)
    known.add("a")
    known.add("b")
    assert known.seen("a")  # "a" is now the most recent
    known.add("c")
    assert len(known) == 2
    assert known.seen("a") and known.seen("c") and not known.seen("b")


def test_a_sum_meter_minute_whose_values_add_to_zero_still_has_its_row(stack: Stack) -> None:
    """Sum meters keep no per-minute counts; a minute slot's presence must still make its row."""
    spec = {"key": "t", "name": "t", "aggregation": "sum", "event_type": "usage", "value_property": "$.n"}
    resp = stack.request("POST", "/meters", spec)
    assert resp.status == 201, resp
    events = [dict(ev(i, "u1"), data={"n": n}) for i, n in ((3, 0), (4, 2), (5, -2), (7, 5))]
    stack.ingest(events)
    stack.drain()
    body = {"from": "2026-05-01T10:00:00Z", "to": "2026-05-01T11:00:00Z", "granularity": "PT1M"}
    data = stack.request("POST", f"/meters/{resp.json()['id']}/query", body).json()["data"]
    assert [(r["from"][11:16], r["value"]) for r in data] == [
        ("10:03", "0"),
        ("10:04", "2"),
        ("10:05", "-2"),
        ("10:07", "5"),
    ]


def meter(stack: Stack, key: str, aggregation: str, **extra: Any) -> str:
    spec = {"key": key, "name": key, "aggregation": aggregation, "event_type": "usage", **extra}
    resp = stack.request("POST", "/meters", spec)
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def subjects_by_meter(stack: Stack, meter_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each meter's day rows (subject, value), queried without a subject filter."""
    body = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z", "group_by_dimensions": ["subject"]}
    out = {}
    for meter_id in meter_ids:
        resp = stack.request("POST", f"/meters/{meter_id}/query", body)
        assert resp.status == 200, resp
        out[meter_id] = [(r["dimensions"]["subject"], r["value"]) for r in resp.json()["data"]]
    return out


def test_meters_on_one_event_type_share_a_new_subjects_index_item(stack: Stack) -> None:
    """Three meters count `usage`: a new subject costs one index lookup and one index write, not
    three (one item per event type). A subject whose events one meter didn't count (a sum meter
    whose value is missing) is listed for that meter too, and reads nothing there."""
    count = meter(stack, "calls", "count")
    total = meter(stack, "tokens", "sum", value_property="$.n")
    users = meter(stack, "users", "unique_count", value_property="$.user")
    writes = usage_puts(stack, [dict(ev(1, "u1", "acme"), data={"user": "u1", "n": 5})])
    assert (writes["S#"], writes["S# asked"]) == (1, 1)
    # `beta` has no `n`: the sum meter records an issue and counts nothing for it.
    writes = usage_puts(stack, [dict(ev(2, "u2", "beta"), data={"user": "u2"})])
    assert (writes["S#"], writes["S# asked"]) == (1, 1)
    assert subjects_by_meter(stack, [count, total, users]) == {
        count: [("acme", "1"), ("beta", "1")],
        total: [("acme", "5")],  # beta: listed by the index, no counter: no row
        users: [("acme", "1"), ("beta", "1")],
    }


def test_subjects_indexed_per_meter_by_the_previous_release_are_still_found(stack: Stack) -> None:
    """Tables written before issue 12 index subjects under `S#<meter_id>`; a query without a
    subject filter, and the invoices' metered-pairs read, take both partitions."""
    count = meter(stack, "calls", "count")
    stack.ingest([ev(1, "u1", "acme"), ev(2, "u1", "beta")])
    stack.drain()
    # Rewrite `beta`'s index item as the previous release had it.
    client, table = stack.clients["dynamodb"], stack.provisioned.env["USAGE_TABLE"]
    client.delete_item(TableName=table, Key={"pk": {"S": index_pk("usage")}, "sk": {"S": "beta"}})
    client.put_item(TableName=table, Item={"pk": {"S": legacy_index_pk(count)}, "sk": {"S": "beta"}})
    assert subjects_by_meter(stack, [count]) == {count: [("acme", "1"), ("beta", "1")]}
    found = bootstrap.meters().get(count)
    pairs = indexed_pairs(client, table, [found], ["acme", "beta", "gamma"], consistent=True)
    assert pairs == {(count, "acme"), (count, "beta")}
