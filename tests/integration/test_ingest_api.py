"""POST /v3/openmeter/events: content types, CloudEvents validation, limits, auth, and PutRecords."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from functions.ingest import handler as ingest_handler
from shared.core.timeutil import Clock
from shared.ingest import publisher as publisher_mod
from shared.ingest import requests
from shared.ingest.publisher import (
    MAX_BYTES_PER_CALL,
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_CALL,
    KinesisPublisher,
    PublishError,
    chunk_records,
    partition_key,
)
from shared.ingest.service import IngestService
from shared.settings import get_settings
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import ADMIN, INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")

SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PLAIN = "application/json"
_DROP = object()  # event(...) override that removes the attribute


def event(i: int = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"evt-{i}",
        "source": "svc-a",
        "type": "prompt",
        "subject": "customer-1",
        "time": "2026-01-01T00:00:00Z",
        "data": {"tokens": i, "model": "gpt-4o"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not _DROP}


def published(stack: Stack) -> list[dict[str, Any]]:
    """Every record written to the stream since the last call, decoded."""
    return [
        orjson.loads(base64.b64decode(rec["kinesis"]["data"]))
        for batch in stack.pending_batches()
        for rec in batch["Records"]
    ]


def post(stack: Stack, body: Any, content_type: str, token: str | None = ADMIN) -> Any:
    return stack.request("POST", "/events", body, token=token, content_type=content_type)


def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, resp
    assert resp.headers.get("content-type", "").startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == status
    assert body["instance"].startswith("kong:trace:")
    return body


def fields(resp: Any) -> list[str]:
    return [p["field"] for p in assert_problem(resp, 400)["invalid_parameters"]]


# -- accepted shapes -----------------------------------------------------------------------------
def test_single_cloudevent_is_published(stack: Stack) -> None:
    resp = stack.ingest(event(1))
    assert resp.status == 202, resp
    assert resp.text == ""
    [record] = published(stack)
    assert record["event"] == {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "svc-a",
        "type": "prompt",
        "subject": "customer-1",
        "time": "2026-01-01T00:00:00Z",
        "data": {"tokens": 1, "model": "gpt-4o"},
    }
    assert "ingested_at" in record


def test_batch_publishes_every_event(stack: Stack) -> None:
    resp = stack.ingest([event(i) for i in range(5)])
    assert resp.status == 202, resp
    assert sorted(r["event"]["id"] for r in published(stack)) == [f"evt-{i}" for i in range(5)]


@pytest.mark.parametrize("payload", [event(7), [event(7), event(8)]], ids=["object", "array"])
def test_plain_json_object_and_array(stack: Stack, payload: Any) -> None:
    resp = post(stack, payload, PLAIN)
    assert resp.status == 202, resp
    expected = 1 if isinstance(payload, dict) else 2
    assert len(published(stack)) == expected


@pytest.mark.parametrize(
    ("ctype", "payload"),
    [
        (SINGLE + "; charset=utf-8", event(1)),
        (BATCH + ";charset=UTF-8", [event(1)]),
        ("Application/JSON; charset=utf-8", event(1)),
    ],
)
def test_content_type_parameters_are_ignored(stack: Stack, ctype: str, payload: Any) -> None:
    assert post(stack, payload, ctype).status == 202


def test_time_and_specversion_default() -> None:
    frozen = datetime(2026, 5, 4, 3, 2, 1, 123000, tzinfo=UTC)

    class Frozen(Clock):
        def now(self) -> datetime:
            return frozen

    sent: list[list[tuple[str, bytes]]] = []

    class Recorder(KinesisPublisher):
        def publish(self, records: Any) -> None:
            sent.append(list(records))

    svc = IngestService(Recorder("s"), 10, 10_000, clock=Frozen())
    raw = event(1, time=_DROP, specversion=_DROP)
    assert svc.ingest(requests.parse(orjson.dumps(raw), SINGLE, 10, 10_000)) == 1
    [[(key, data)]] = sent
    record = orjson.loads(data)
    assert record["event"]["time"] == "2026-05-04T03:02:01.123Z"
    assert record["event"]["specversion"] == "1.0"
    assert record["ingested_at"] == "2026-05-04T03:02:01.123Z"
    assert key == partition_key("svc-a", "evt-1")


def test_time_is_normalised_to_utc(stack: Stack) -> None:
    assert stack.ingest(event(1, time="2026-01-01T05:30:00+05:30")).status == 202
    assert published(stack)[0]["event"]["time"] == "2026-01-01T00:00:00Z"


def test_null_optional_attributes_are_accepted(stack: Stack) -> None:
    resp = stack.ingest(event(1, time=None, data=None, datacontenttype=None, dataschema=None))
    assert resp.status == 202, resp
    [record] = published(stack)
    assert "data" not in record["event"]
    assert record["event"]["time"]


# -- 400 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["id", "source", "type", "subject"])
def test_missing_required_attribute(stack: Stack, name: str) -> None:
    resp = stack.ingest(event(1, **{name: _DROP}))
    body = assert_problem(resp, 400)
    [param] = body["invalid_parameters"]
    assert param["field"] == name
    assert param["rule"] == "required"
    assert param["source"] == "body"
    assert published(stack) == []


@pytest.mark.parametrize("name", ["id", "source", "type", "subject"])
def test_empty_required_attribute(stack: Stack, name: str) -> None:
    resp = stack.ingest(event(1, **{name: ""}))
    [param] = assert_problem(resp, 400)["invalid_parameters"]
    assert (param["field"], param["rule"], param["minimum"]) == (name, "min_length", 1)


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"data": "tokens=5"}, "data", "is_object"),
        ({"data": [1, 2]}, "data", "is_object"),
        ({"datacontenttype": "text/plain"}, "datacontenttype", "enum"),
        ({"time": "yesterday"}, "time", "is_date_time"),
        ({"time": "2026-01-01T00:00:00"}, "time", "is_date_time"),  # no offset
        ({"time": 1767225600}, "time", "is_date_time"),
        ({"color": "blue"}, "color", "unknown_property"),
        ({"subject": 42}, "subject", "is_string"),
        ({"specversion": "0.3"}, "specversion", "invalid"),
        ({"source": "has space"}, "source", "matches_regex"),
        ({"dataschema": "not a uri"}, "dataschema", "invalid"),
    ],
)
def test_invalid_attribute(stack: Stack, overrides: dict[str, Any], field: str, rule: str) -> None:
    resp = stack.ingest(event(1, **overrides))
    params = assert_problem(resp, 400)["invalid_parameters"]
    assert [(p["field"], p["rule"]) for p in params] == [(field, rule)]
    assert published(stack) == []


@pytest.mark.parametrize("name", ["source", "type", "subject"])
def test_attributes_that_become_storage_keys_are_bounded_in_bytes(stack: Stack, name: str) -> None:
    """source, type and subject end up in DynamoDB keys (2,048 / 1,024-byte limits): an event that
    can't be stored must be refused here, never accepted and then fail its batch forever."""
    resp = stack.ingest(event(1, **{name: "é" * 129}))  # 129 characters, 258 bytes
    [param] = assert_problem(resp, 400)["invalid_parameters"]
    assert (param["field"], param["rule"], param["maximum"]) == (name, "max_length", 256)
    assert published(stack) == []


def test_an_id_within_512_characters_but_not_512_bytes_is_refused(stack: Stack) -> None:
    [param] = assert_problem(stack.ingest(event(1, id="€" * 200)), 400)["invalid_parameters"]
    assert (param["field"], param["rule"], param["maximum"]) == ("id", "max_length", 512)


def test_the_longest_accepted_attributes_are_stored_and_counted(stack: Stack) -> None:
    """At every limit at once (multi-byte characters): listed, counted, no failed batch."""
    meter = stack.request(
        "POST", "/meters", {"key": "long", "name": "long", "aggregation": "count", "event_type": "t" * 256}
    )
    assert meter.status == 201, meter
    longest = event(1, id="i" * 512, source="s" * 256, type="t" * 256, subject="ü" * 128)
    assert stack.ingest(longest).status == 202
    stack.drain()  # would raise on a failed batch
    window = {"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
    resp = stack.request(
        "POST", f"/meters/{meter.json()['id']}/query", {**window, "group_by_dimensions": ["subject"]}
    )
    assert [(r["dimensions"]["subject"], r["value"]) for r in resp.json()["data"]] == [("ü" * 128, "1")]


def test_datacontenttype_error_lists_choices(stack: Stack) -> None:
    [param] = assert_problem(stack.ingest(event(1, datacontenttype="text/xml")), 400)["invalid_parameters"]
    assert param["choices"] == ["application/json"]


def test_batch_errors_name_the_index_and_nothing_is_published(stack: Stack) -> None:
    batch = [event(0), event(1, subject=_DROP), event(2), event(3, data="x", type="")]
    resp = stack.ingest(batch)
    assert sorted(fields(resp)) == ["[1].subject", "[3].data", "[3].type"]
    assert "[1].subject" in resp.json()["detail"]
    assert published(stack) == []


def test_plain_json_array_errors_are_indexed(stack: Stack) -> None:
    resp = post(stack, [event(0), event(1, id=_DROP)], PLAIN)
    assert fields(resp) == ["[1].id"]
    assert published(stack) == []


def test_non_object_in_batch(stack: Stack) -> None:
    assert fields(stack.ingest([event(0), "oops"])) == ["[1]"]


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"{not json", SINGLE),
        (b"[1, 2", BATCH),
        (b"\xff\xfe", PLAIN),
    ],
)
def test_non_json_body(stack: Stack, body: bytes, ctype: str) -> None:
    resp = post(stack, body, ctype)
    [param] = assert_problem(resp, 400)["invalid_parameters"]
    assert param["field"] == "body"
    assert published(stack) == []


def test_empty_body(stack: Stack) -> None:
    # The harness omits Content-Type for an empty body; send it explicitly.
    resp = stack.request("POST", "/events", b"", content_type=SINGLE, headers={"Content-Type": SINGLE})
    assert fields(resp) == ["body"]


def test_empty_batch(stack: Stack) -> None:
    resp = post(stack, [], BATCH)
    [param] = assert_problem(resp, 400)["invalid_parameters"]
    assert param["field"] == "body"
    assert param["rule"] == "min_items"
    assert param["minimum"] == 1


def test_empty_plain_json_array(stack: Stack) -> None:
    assert fields(post(stack, [], PLAIN)) == ["body"]


@pytest.mark.parametrize(("body", "ctype"), [([event(1)], SINGLE), (event(1), BATCH)])
def test_shape_must_match_content_type(stack: Stack, body: Any, ctype: str) -> None:
    assert fields(post(stack, body, ctype)) == ["body"]
    assert published(stack) == []


# -- limits --------------------------------------------------------------------------------------
@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_limits(**env: int) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()
        ingest_handler.service.cache_clear()

    yield set_limits
    get_settings.cache_clear()
    ingest_handler.service.cache_clear()


def test_event_count_limit(stack: Stack, limits: Any) -> None:
    limits(MAX_EVENTS_PER_REQUEST=3)
    assert stack.ingest([event(i) for i in range(3)]).status == 202
    assert len(published(stack)) == 3
    resp = stack.ingest([event(i) for i in range(4)])
    body = assert_problem(resp, 413)
    assert "3" in body["detail"]
    assert published(stack) == []


def test_byte_limit(stack: Stack, limits: Any) -> None:
    limits(MAX_REQUEST_BYTES=2000)
    small = [event(1)]
    assert len(orjson.dumps(small)) < 2000
    assert stack.ingest(small).status == 202
    big = [event(i, data={"pad": "x" * 300}) for i in range(10)]
    assert len(orjson.dumps(big)) > 2000
    assert_problem(stack.ingest(big), 413)
    assert len(published(stack)) == 1


def test_default_limits_accept_a_large_batch(stack: Stack) -> None:
    resp = stack.ingest([event(i) for i in range(1000)])
    assert resp.status == 202, resp
    assert len(published(stack)) == 1000
    assert_problem(stack.ingest([event(i) for i in range(1001)]), 413)


def test_unsupported_media_type(stack: Stack) -> None:
    assert_problem(post(stack, orjson.dumps(event(1)), "text/plain"), 415)
    assert_problem(post(stack, orjson.dumps(event(1)), "application/xml"), 415)
    assert published(stack) == []


# -- auth ----------------------------------------------------------------------------------------
def test_no_token_is_401(stack: Stack) -> None:
    assert_problem(stack.ingest(event(1), token=None), 401)  # type: ignore[arg-type]
    assert published(stack) == []


def test_bad_token_is_401(stack: Stack) -> None:
    assert_problem(stack.ingest(event(1), token="mlt_not_a_token"), 401)


def test_non_bearer_scheme_is_401(stack: Stack) -> None:
    resp = stack.request(
        "POST",
        "/events",
        event(1),
        token=None,
        content_type=SINGLE,
        headers={"Authorization": f"Basic {ADMIN}"},
    )
    assert_problem(resp, 401)


def test_viewer_cannot_ingest(stack: Stack) -> None:
    assert_problem(stack.ingest(event(1), token=VIEWER), 403)
    assert published(stack) == []


def test_auth_is_checked_before_the_body(stack: Stack) -> None:
    assert_problem(post(stack, b"{bad", SINGLE, token=None), 401)
    assert_problem(post(stack, b"{bad", SINGLE, token=VIEWER), 403)


def test_ingest_token_can_only_ingest(stack: Stack) -> None:
    assert stack.ingest(event(1), token=INGESTER).status == 202
    assert_problem(stack.request("GET", "/meters", token=INGESTER), 403)
    assert_problem(
        stack.request(
            "POST",
            "/meters",
            {"key": "k", "name": "k", "aggregation": "count", "event_type": "t"},
            token=INGESTER,
        ),
        403,
    )


# -- PutRecords ----------------------------------------------------------------------------------
def rec(i: int, size: int = 10) -> tuple[str, bytes]:
    return (f"k{i}", b"x" * size)


def test_chunk_records_at_500() -> None:
    chunks = chunk_records([rec(i) for i in range(1001)])
    assert [len(c) for c in chunks] == [MAX_RECORDS_PER_CALL, MAX_RECORDS_PER_CALL, 1]
    assert [r for c in chunks for r in c] == [rec(i) for i in range(1001)]


def test_chunk_records_exactly_500_is_one_call() -> None:
    assert [len(c) for c in chunk_records([rec(i) for i in range(500)])] == [500]
    assert chunk_records([]) == []


def test_chunk_records_by_bytes() -> None:
    # Each record is key (2-3 bytes) + ~1 MB data: five fit in 5 MiB only if keys are counted.
    size = MAX_RECORD_BYTES - 10
    records = [(f"k{i}", b"x" * size) for i in range(11)]
    chunks = chunk_records(records)
    for c in chunks:
        assert sum(len(k.encode()) + len(d) for k, d in c) <= MAX_BYTES_PER_CALL
    assert [len(c) for c in chunks] == [5, 5, 1]


def test_chunk_records_counts_partition_keys_in_bytes() -> None:
    data_size = MAX_BYTES_PER_CALL // 6  # six data blobs fit in 5 MiB; six blobs plus keys don't
    chunks = chunk_records([("k" * 100, b"x" * data_size) for _ in range(6)])
    assert [len(c) for c in chunks] == [5, 1]


def test_chunk_records_rejects_an_oversized_record() -> None:
    with pytest.raises(ValueError):
        chunk_records([("k", b"x" * MAX_RECORD_BYTES)])


class FakeKinesis:
    """put_records that fails the entries whose partition key is scheduled to fail on that call."""

    def __init__(self, fail_plan: list[set[str]]) -> None:
        self.fail_plan = fail_plan
        self.calls: list[list[str]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [r["PartitionKey"] for r in Records]
        failing = self.fail_plan[len(self.calls)] if len(self.calls) < len(self.fail_plan) else set()
        self.calls.append(keys)
        results = []
        for i, key in enumerate(keys):
            if key in failing:
                results.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
                )
            else:
                results.append({"SequenceNumber": str(i), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum(1 for r in results if "ErrorCode" in r), "Records": results}


def test_publisher_retries_exactly_the_failed_entries() -> None:
    fake = FakeKinesis([{"k1", "k3"}, {"k3"}])
    sleeps: list[float] = []
    pub = KinesisPublisher("stream", client=fake, sleep=sleeps.append)
    pub.publish([rec(i) for i in range(5)])
    assert fake.calls == [["k0", "k1", "k2", "k3", "k4"], ["k1", "k3"], ["k3"]]
    assert len(sleeps) == 2


def test_publisher_retries_per_chunk() -> None:
    fake = FakeKinesis([{"k499"}, set(), set()])
    pub = KinesisPublisher("stream", client=fake, sleep=lambda _s: None)
    pub.publish([rec(i) for i in range(501)])
    assert [len(c) for c in fake.calls] == [500, 1, 1]
    assert fake.calls[1] == ["k499"]
    assert fake.calls[2] == ["k500"]


def test_publisher_gives_up_after_max_attempts() -> None:
    fake = FakeKinesis([{"k2"}] * 10)
    sleeps: list[float] = []
    pub = KinesisPublisher("stream", client=fake, max_attempts=3, sleep=sleeps.append)
    with pytest.raises(PublishError):
        pub.publish([rec(i) for i in range(4)])
    assert fake.calls == [["k0", "k1", "k2", "k3"], ["k2"], ["k2"]]
    assert len(sleeps) == 2  # backoff between attempts, not after the last one


def test_publish_failure_is_503(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKinesis([{partition_key("svc-a", "evt-1")}] * 10)
    svc = IngestService(
        KinesisPublisher("stream", client=fake, max_attempts=2, sleep=lambda _s: None), 10, 10_000
    )
    monkeypatch.setattr(ingest_handler, "service", lambda: svc)
    resp = stack.ingest([event(0), event(1)])
    body = assert_problem(resp, 503)
    assert "resend" in body["detail"]
    assert len(fake.calls) == 2


def test_publisher_backoff_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_mod.random, "random", lambda: 1.0)
    fake = FakeKinesis([{"k0"}] * 20)
    sleeps: list[float] = []
    pub = KinesisPublisher("stream", client=fake, max_attempts=10, sleep=sleeps.append)
    with pytest.raises(PublishError):
        pub.publish([rec(0)])
    assert all(0 < s <= 2.0 for s in sleeps)
    assert sleeps == sorted(sleeps)


def test_oversized_single_event_is_413_not_a_crash(stack: Stack) -> None:
    # Under the 5 MiB request limit but over Kinesis's 1 MiB record limit.
    resp = stack.ingest([event(0), event(1, data={"pad": "x" * (1024 * 1024 + 10)})])
    body = assert_problem(resp, 413)
    assert "[1]" in body["detail"]
    assert published(stack) == []


class RaisingKinesis:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}}, "PutRecords")
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"} for _ in Records]}


def test_publisher_retries_a_failed_call() -> None:
    fake = RaisingKinesis(failures=2)
    KinesisPublisher("stream", client=fake, sleep=lambda _s: None).publish([rec(0), rec(1)])
    assert fake.calls == 3


def test_publisher_call_failures_become_publish_error() -> None:
    fake = RaisingKinesis(failures=99)
    with pytest.raises(PublishError):
        KinesisPublisher("stream", client=fake, max_attempts=3, sleep=lambda _s: None).publish([rec(0)])
    assert fake.calls == 3
