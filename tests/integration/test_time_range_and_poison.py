"""Nothing a client sends can stop metering (issue 8): time range at the edge, poison records and
broken stored meters isolated in the aggregate function, meter reads that never 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from shared.aws.dynamo import to_value
from shared.core.timeutil import format_rfc3339
from shared.ingest.publisher import partition_key
from shared.settings import get_settings
from tests.support.harness import Stack
from tests.support.problems import problem

T = "2026-03-01T10:05:00Z"
WINDOW = {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T11:00:00Z"}


def fields(resp: Any) -> list[str]:
    return [p["field"] for p in problem(resp, 400)["invalid_parameters"]]


def good(i: int, **overrides: Any) -> dict[str, Any]:
    body = {"id": f"g{i}", "source": "gw", "type": "request", "subject": "acme", "time": T, "data": {"n": i}}
    return {**body, **overrides}


def sum_meter(stack: Stack, key: str = "n_total", **extra: Any) -> str:
    body = {"key": key, "name": "N", "aggregation": "sum", "event_type": "request", "value_property": "$.n"}
    resp = stack.request("POST", "/meters", {**body, **extra})
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def total(stack: Stack, meter_id: str) -> str | None:
    resp = stack.request("POST", f"/meters/{meter_id}/query", WINDOW)
    assert resp.status == 200, resp
    rows = resp.json()["data"]
    return rows[0]["value"] if rows else None


def publish_raw(stack: Stack, events: list[dict[str, Any]]) -> None:
    """Records the way an older ingest (or a bug) could have put them in the stream: unchecked."""
    ingested_at = format_rfc3339(datetime.now(UTC))
    stack.clients["kinesis"].put_records(
        StreamName=stack.provisioned.stream_name,
        Records=[
            {
                "PartitionKey": partition_key(e["source"], e["id"]),
                "Data": orjson.dumps({"event": e, "ingested_at": ingested_at}),
            }
            for e in events
        ],
    )


def stored_meter_field(stack: Stack, meter_id: str, name: str, value: str) -> None:
    """Overwrite one attribute of a stored meter, as data written by an older release."""
    stack.clients["dynamodb"].update_item(
        TableName=get_settings().config_table,
        Key={"pk": {"S": f"METER#{meter_id}"}, "sk": {"S": "METER"}},
        UpdateExpression="SET #f = :v",
        ExpressionAttributeNames={"#f": name},
        ExpressionAttributeValues={":v": to_value(value)},
    )


def listed_events(
    stack: Stack, since: str = "2026-03-01T10:00:00Z", until: str = "2026-03-01T11:00:00Z"
) -> dict[str, dict[str, Any]]:
    query = f"filter[time][gte]={since}&filter[time][lt]={until}&page[size]=100"
    resp = stack.request("GET", f"/events?{query}".replace("+", "%2B"))
    assert resp.status == 200, resp
    return {item["event"]["id"]: item for item in resp.json()["data"]}


# -- hole 1: one meter stops all counting -------------------------------------------------------
def test_events_from_before_year_1000_is_refused_naming_the_field(stack: Stack) -> None:
    body = {"key": "m", "name": "m", "aggregation": "count", "event_type": "request"}
    for value in ("0999-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"):
        resp = stack.request("POST", "/meters", {**body, "events_from": value})
        assert fields(resp) == ["events_from"], value
    assert stack.request("GET", "/meters").json()["data"] == []


def test_a_meter_stored_with_a_legacy_year_999_still_lists_gets_and_deletes(stack: Stack) -> None:
    """`999-01-01T00:00:00Z` is what the old formatter wrote; the API and the pipeline read it."""
    other = sum_meter(stack)
    broken = sum_meter(stack, "0", events_from="2026-01-01T00:00:00Z")
    stored_meter_field(stack, broken, "events_from", "999-01-01T00:00:00Z")
    listed = stack.request("GET", "/meters")
    assert listed.status == 200, listed
    assert {m["key"]: m.get("events_from") for m in listed.json()["data"]}["0"] == "0999-01-01T00:00:00Z"
    assert stack.request("GET", "/meters/0").status == 200
    assert stack.request("PUT", "/meters/0", {"name": "renamed"}).status == 200
    assert stack.ingest([good(1), good(2)]).status == 202
    stack.drain()
    assert total(stack, other) == "3"
    assert total(stack, broken) == "3"
    assert stack.request("DELETE", "/meters/0").status == 204
    problem(stack.request("GET", "/meters/0"), 404)
    problem(stack.request("DELETE", "/meters/0"), 404)


def test_a_meter_with_unparseable_stored_data_is_isolated(stack: Stack) -> None:
    other = sum_meter(stack)
    broken = sum_meter(stack, "broken")
    stored_meter_field(stack, broken, "events_from", "last tuesday")
    stored_meter_field(stack, broken, "value_property", "$[[")
    listed = stack.request("GET", "/meters")
    assert listed.status == 200, listed
    assert stack.request("GET", f"/meters/{broken}").status == 200
    assert stack.ingest([good(1), good(2)]).status == 202
    stack.drain()  # asserts the batch did not fail
    assert total(stack, other) == "3"
    assert total(stack, broken) is None
    errors = listed_events(stack)["g1"]["validation_errors"]
    assert [e["attributes"].get("meter") for e in errors if e["code"] == "meter_unavailable"] == ["broken"]
    assert stack.request("DELETE", f"/meters/{broken}").status == 204


# -- hole 2: poison events -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "two days ahead",
    ],
)
def test_event_time_outside_the_accepted_range_is_400_naming_time(stack: Stack, value: str) -> None:
    if value == "two days ahead":  # (computed here: xdist workers must collect the same ids)
        value = format_rfc3339(datetime.now(UTC) + timedelta(days=2))
    assert fields(stack.ingest(good(1, time=value))) == ["time"]
    assert fields(stack.ingest([good(1), good(2, time=value)])) == ["[1].time"]
    assert stack.pending_batches() == []


def test_event_time_within_a_day_ahead_is_accepted(stack: Stack) -> None:
    soon = format_rfc3339(datetime.now(UTC) + timedelta(hours=23))
    assert stack.ingest(good(1, time=soon)).status == 202


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.mark.parametrize("depth", [33, 300, 1000])
def test_deeply_nested_data_is_400_naming_data(stack: Stack, depth: int) -> None:
    envelope = orjson.dumps(good(1, data="X")).replace(b'"X"', nested(depth))
    assert fields(
        stack.request("POST", "/events", envelope, content_type="application/cloudevents+json")
    ) == ["data"]
    batch = b"[" + orjson.dumps(good(0)) + b"," + envelope + b"]"
    resp = stack.request("POST", "/events", batch, content_type="application/cloudevents-batch+json")
    assert fields(resp) == ["[1].data"]


def test_data_nested_32_deep_is_accepted(stack: Stack) -> None:
    envelope = orjson.dumps(good(1, data="X")).replace(b'"X"', nested(32))
    assert (
        stack.request("POST", "/events", envelope, content_type="application/cloudevents+json").status == 202
    )


def test_poison_records_that_slipped_past_are_stored_with_errors_and_batch_mates_counted(
    stack: Stack,
) -> None:
    meter = sum_meter(stack)
    count = stack.request(
        "POST", "/meters", {"key": "c", "name": "c", "aggregation": "count", "event_type": "request"}
    ).json()["id"]
    poison = [
        good(100, time="9999-12-31T23:59:59Z"),
        good(101, time="0001-01-01T00:00:00Z"),
        good(102, time="0001-01-01T00:00:00+01:00"),
        good(103, time="999-01-01T00:00:00Z"),
        good(104, time="not a time"),
    ]
    publish_raw(stack, [good(1), *poison, good(2), good(3)])
    stack.drain()  # asserts no batch failed
    assert total(stack, meter) == "6"
    assert total(stack, count) == "3"
    # Events whose time can't be used are indexed at their ingestion time.
    now = datetime.now(UTC)
    listed = listed_events(
        stack, format_rfc3339(now - timedelta(hours=1)), format_rfc3339(now + timedelta(hours=1))
    )
    for e in poison:
        codes = [v["code"] for v in listed[e["id"]]["validation_errors"]]
        assert "invalid_time" in codes, listed[e["id"]]
        assert listed[e["id"]]["event"]["time"] == e["time"]  # kept as sent, never lost


def test_a_value_that_overflows_the_decimal_context_is_isolated(stack: Stack) -> None:
    meter = sum_meter(stack)
    publish_raw(stack, [good(1), good(2, data={"n": "1e999999999"}), good(3)])
    stack.drain()
    assert total(stack, meter) == "4"
    assert listed_events(stack)["g2"]["validation_errors"]


# -- hole 3: meter query range and window count ----------------------------------------------------
def test_query_range_outside_the_engine_range_is_400_before_reading(stack: Stack) -> None:
    meter = sum_meter(stack)
    resp = stack.request(
        "POST", f"/meters/{meter}/query", {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"}
    )
    assert fields(resp) == ["from", "to"]


@pytest.mark.parametrize("with_data", [False, True])
def test_window_count_is_checked_on_the_requested_range_up_front(stack: Stack, with_data: bool) -> None:
    meter = sum_meter(stack)
    if with_data:
        stack.ingest(good(1))
        stack.drain()
    body = {"from": "1970-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "granularity": "PT1M"}
    assert fields(stack.request("POST", f"/meters/{meter}/query", body)) == ["granularity"]
    assert stack.request("POST", f"/meters/{meter}/query", {**body, "granularity": "P1D"}).status == 200


def test_query_without_granularity_over_the_whole_engine_range(stack: Stack) -> None:
    meter = sum_meter(stack)
    stack.ingest([good(1), good(2)])
    stack.drain()
    resp = stack.request(
        "POST", f"/meters/{meter}/query", {"from": "1970-01-01T00:00:00Z", "to": "2200-01-01T00:00:00Z"}
    )
    assert resp.status == 200, resp
    assert Decimal(resp.json()["data"][0]["value"]) == 3


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_unknown_meter_zero_is_404_problem(stack: Stack, method: str) -> None:
    body = {"name": "x"} if method == "PUT" else None
    problem(stack.request(method, "/meters/0", body), 404)
