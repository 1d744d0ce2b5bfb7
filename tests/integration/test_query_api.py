"""POST /v3/openmeter/meters/{id}/query over events ingested through the API and drained."""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any

import pytest

from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")

_ids = itertools.count()
DAY = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}


def ev(time: str, tokens: Any = 1, subject: str = "customer-1", type_: str = "prompt", **data: Any) -> dict:
    return {
        "id": f"e{next(_ids)}",
        "source": "test",
        "type": type_,
        "subject": subject,
        "time": time,
        "data": {"tokens": tokens, **data},
    }


def make_meter(stack: Stack, key: str = "tokens", aggregation: str = "sum", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": key,
        "aggregation": aggregation,
        "event_type": "prompt",
        "dimensions": {"model": "$.model", "kind": "$.kind"},
        **extra,
    }
    if aggregation != "count":
        body.setdefault("value_property", "$.tokens")
    resp = stack.request("POST", "/meters", body)
    assert resp.status == 201, resp
    return resp.json()


def load(stack: Stack, events: list[dict[str, Any]]) -> None:
    resp = stack.ingest(events)
    assert resp.status == 202, resp
    assert stack.drain() == len(events)


def query(stack: Stack, meter: dict[str, Any], body: dict[str, Any], **kw: Any) -> Any:
    return stack.request("POST", f"/meters/{meter['id']}/query", body, **kw)


def rows(stack: Stack, meter: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = query(stack, meter, body)
    assert resp.status == 200, resp
    assert resp.headers.get("content-type") == "application/json"
    result = contract.validate(resp, "query-meter")
    contract.validate_component(result, "MeterQueryResult")
    return result["data"]


def values(stack: Stack, meter: dict[str, Any], body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(r["from"], r["to"], r["value"]) for r in rows(stack, meter, body)]


def grouped(stack: Stack, meter: dict[str, Any], body: dict[str, Any]) -> dict[tuple[str, ...], str]:
    return {tuple(r["dimensions"].values()): r["value"] for r in rows(stack, meter, body)}


def bad(stack: Stack, meter: dict[str, Any], body: Any) -> dict[str, Any]:
    resp = query(stack, meter, body)
    assert resp.status == 400, resp
    assert resp.headers.get("content-type") == "application/problem+json"
    contract.validate(resp, "query-meter")
    return resp.json()


# -- values --------------------------------------------------------------------------------------
def test_sum_and_count_over_the_whole_range(stack: Stack) -> None:
    tokens = make_meter(stack)
    calls = make_meter(stack, "calls", "count")
    load(
        stack,
        [ev("2026-01-01T00:00:10Z", 1.5), ev("2026-01-01T05:00:00Z", "2.25"), ev("2026-01-01T23:59:59Z", 10)],
    )
    result = query(stack, tokens, DAY).json()
    assert result == {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "data": [
            {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "value": "13.75", "dimensions": {}}
        ],
    }
    assert values(stack, calls, DAY) == [("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "3")]


def test_decimal_sums_are_exact(stack: Stack) -> None:
    meter = make_meter(stack)
    load(stack, [ev("2026-01-01T00:00:00Z", "0.1") for _ in range(3)] + [ev("2026-01-01T00:00:00Z", 10**15)])
    assert values(stack, meter, DAY)[0][2] == "1000000000000000.3"


def test_avg(stack: Stack) -> None:
    meter = make_meter(stack, "avg_tokens", "avg")
    load(stack, [ev("2026-01-01T00:00:00Z", 1), ev("2026-01-01T01:00:00Z", 2)])
    assert values(stack, meter, DAY)[0][2] == "1.5"


def test_other_event_types_and_duplicates_are_not_counted(stack: Stack) -> None:
    meter = make_meter(stack)
    dup = ev("2026-01-01T00:00:00Z", 5)
    load(stack, [dup, dict(dup), ev("2026-01-01T00:00:00Z", 7, type_="other")])
    load(stack, [dict(dup)])
    assert values(stack, meter, DAY)[0][2] == "5"


def test_empty_result(stack: Stack) -> None:
    meter = make_meter(stack)
    load(stack, [ev("2026-01-03T00:00:00Z")])
    assert rows(stack, meter, DAY) == []
    assert rows(stack, meter, {**DAY, "granularity": "PT1H"}) == []


def test_query_by_key_and_empty_body(stack: Stack) -> None:
    meter = make_meter(stack)
    load(stack, [ev("2026-01-01T00:00:00Z", 4)])
    resp = stack.request("POST", "/meters/tokens/query", DAY)
    assert resp.status == 200, resp
    assert resp.json()["data"][0]["value"] == "4"
    # No body at all: every recorded usage up to now.
    resp = stack.request("POST", f"/meters/{meter['id']}/query", None)
    assert resp.status == 200, resp
    assert [r["value"] for r in contract.validate(resp, "query-meter")["data"]] == ["4"]


# -- windows -------------------------------------------------------------------------------------
def test_minute_windows_only_non_empty(stack: Stack) -> None:
    meter = make_meter(stack)
    load(
        stack,
        [ev("2026-01-01T00:00:10Z", 1), ev("2026-01-01T00:00:59.999Z", 2), ev("2026-01-01T00:02:30Z", 4)],
    )
    assert values(stack, meter, {**DAY, "granularity": "PT1M"}) == [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "3"),
        ("2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z", "4"),
    ]


def test_hour_and_day_windows(stack: Stack) -> None:
    meter = make_meter(stack)
    load(
        stack,
        [
            ev("2026-01-01T00:59:00Z", 1),
            ev("2026-01-01T01:00:00Z", 2),
            ev("2026-01-01T03:30:00Z", 4),
            ev("2026-01-02T00:00:00Z", 8),
            ev("2026-01-03T12:00:00Z", 16),
        ],
    )
    assert values(stack, meter, {**DAY, "granularity": "PT1H"}) == [
        ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "1"),
        ("2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2"),
        ("2026-01-01T03:00:00Z", "2026-01-01T04:00:00Z", "4"),
    ]
    three_days = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-04T00:00:00Z", "granularity": "P1D"}
    assert values(stack, meter, three_days) == [
        ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "7"),
        ("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "8"),
        ("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "16"),
    ]


def test_to_is_exclusive_and_from_inclusive(stack: Stack) -> None:
    meter = make_meter(stack)
    load(
        stack,
        [
            ev("2026-01-01T10:00:00Z", 1),
            ev("2026-01-01T10:59:59Z", 2),
            ev("2026-01-01T11:00:00Z", 4),
            ev("2026-01-01T09:59:59Z", 8),
        ],
    )
    body = {"from": "2026-01-01T10:00:00Z", "to": "2026-01-01T11:00:00Z"}
    assert values(stack, meter, body) == [("2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "3")]
    assert values(stack, meter, {**body, "granularity": "PT1M"})[-1][:2] == (
        "2026-01-01T10:59:00Z",
        "2026-01-01T11:00:00Z",
    )


def test_range_across_month_and_granularity_p1m(stack: Stack) -> None:
    meter = make_meter(stack)
    load(stack, [ev("2026-01-31T23:59:00Z", 1), ev("2026-02-01T00:00:00Z", 2), ev("2026-02-28T23:59:00Z", 4)])
    body = {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "granularity": "P1M"}
    assert values(stack, meter, body) == [
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "1"),
        ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "6"),
    ]
    assert values(stack, meter, {k: v for k, v in body.items() if k != "granularity"})[0][2] == "7"


def test_kolkata_days_start_at_1830_utc(stack: Stack) -> None:
    meter = make_meter(stack)
    load(stack, [ev("2026-01-01T18:29:00Z", 1), ev("2026-01-01T18:30:00Z", 2), ev("2026-01-02T18:29:59Z", 4)])
    body = {
        "from": "2025-12-31T18:30:00Z",
        "to": "2026-01-02T18:30:00Z",
        "granularity": "P1D",
        "time_zone": "Asia/Kolkata",
    }
    assert values(stack, meter, body) == [
        ("2025-12-31T18:30:00Z", "2026-01-01T18:30:00Z", "1"),
        ("2026-01-01T18:30:00Z", "2026-01-02T18:30:00Z", "6"),
    ]
    # The same events in UTC days.
    assert values(
        stack,
        meter,
        {**body, "time_zone": "UTC", "from": "2026-01-01T00:00:00Z", "to": "2026-01-03T00:00:00Z"},
    ) == [
        ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "3"),
        ("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "4"),
    ]


def test_kolkata_hours_start_at_half_past(stack: Stack) -> None:
    meter = make_meter(stack)
    load(stack, [ev("2026-01-01T10:29:00Z", 1), ev("2026-01-01T10:30:00Z", 2)])
    body = {
        "from": "2026-01-01T09:30:00Z",
        "to": "2026-01-01T11:30:00Z",
        "granularity": "PT1H",
        "time_zone": "Asia/Kolkata",
    }
    assert values(stack, meter, body) == [
        ("2026-01-01T09:30:00Z", "2026-01-01T10:30:00Z", "1"),
        ("2026-01-01T10:30:00Z", "2026-01-01T11:30:00Z", "2"),
    ]


def test_los_angeles_spring_forward_day_is_23_hours(stack: Stack) -> None:
    meter = make_meter(stack)
    load(
        stack,
        [
            ev("2026-03-08T07:59:00Z", 1),  # 23:59 PST on the 7th
            ev("2026-03-08T08:00:00Z", 2),  # local midnight, the 8th
            ev("2026-03-09T06:59:00Z", 4),  # 23:59 PDT on the 8th
            ev("2026-03-09T07:00:00Z", 8),  # local midnight, the 9th
        ],
    )
    body = {
        "from": "2026-03-07T08:00:00Z",
        "to": "2026-03-10T07:00:00Z",
        "granularity": "P1D",
        "time_zone": "America/Los_Angeles",
    }
    assert values(stack, meter, body) == [
        ("2026-03-07T08:00:00Z", "2026-03-08T08:00:00Z", "1"),
        ("2026-03-08T08:00:00Z", "2026-03-09T07:00:00Z", "6"),
        ("2026-03-09T07:00:00Z", "2026-03-10T07:00:00Z", "8"),
    ]


def test_los_angeles_fall_back_day_is_25_hours(stack: Stack) -> None:
    meter = make_meter(stack)
    load(
        stack,
        [
            ev("2026-11-01T07:00:00Z", 1),  # local midnight PDT, the 1st
            ev("2026-11-01T09:30:00Z", 2),  # 01:30 PST (the repeated hour)
            ev("2026-11-02T07:59:00Z", 4),  # 23:59 PST on the 1st
            ev("2026-11-02T08:00:00Z", 8),  # local midnight, the 2nd
        ],
    )
    body = {
        "from": "2026-11-01T07:00:00Z",
        "to": "2026-11-03T08:00:00Z",
        "granularity": "P1D",
        "time_zone": "America/Los_Angeles",
    }
    assert values(stack, meter, body) == [
        ("2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z", "7"),
        ("2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z", "8"),
    ]


def test_santiago_day_when_midnight_does_not_exist(stack: Stack) -> None:
    meter = make_meter(stack)
    # 2026-09-06 00:00 -04 jumps to 01:00 -03: the 6th starts at 04:00Z and lasts 23 h.
    load(stack, [ev("2026-09-06T03:59:00Z", 1), ev("2026-09-06T04:00:00Z", 2)])
    body = {
        "from": "2026-09-05T04:00:00Z",
        "to": "2026-09-07T03:00:00Z",
        "granularity": "P1D",
        "time_zone": "America/Santiago",
    }
    assert values(stack, meter, body) == [
        ("2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z", "1"),
        ("2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z", "2"),
    ]


# -- grouping and filters ------------------------------------------------------------------------
@pytest.fixture
def mixed(stack: Stack) -> dict[str, Any]:
    meter = make_meter(stack)
    t = "2026-01-01T12:00:00Z"
    load(
        stack,
        [
            ev(t, 1, "acme", model="gpt-4o", kind="input"),
            ev(t, 2, "acme", model="gpt-4o", kind="output"),
            ev(t, 4, "acme", model="gpt-4o-mini", kind="input"),
            ev(t, 8, "globex", model="claude", kind="input"),
            ev(t, 16, "globex"),  # no model, no kind
            ev(t, 32, "initech", model="gpt-4o", kind="input"),
        ],
    )
    return meter


def test_group_by(stack: Stack, mixed: dict[str, Any]) -> None:
    assert grouped(stack, mixed, {**DAY, "group_by_dimensions": ["model"]}) == {
        ("gpt-4o",): "35",
        ("gpt-4o-mini",): "4",
        ("claude",): "8",
        ("",): "16",  # events without the dimension group under ""
    }
    result = rows(stack, mixed, {**DAY, "group_by_dimensions": ["subject", "kind"]})
    got = {(r["dimensions"]["subject"], r["dimensions"]["kind"]): r["value"] for r in result}
    assert got == {
        ("acme", "input"): "5",
        ("acme", "output"): "2",
        ("globex", "input"): "8",
        ("globex", ""): "16",
        ("initech", "input"): "32",
    }
    assert all(set(r["dimensions"]) == {"subject", "kind"} for r in result)
    by_subject = {
        **DAY,
        "group_by_dimensions": ["subject"],
        "filters": {"dimensions": {"subject": {"in": ["acme", "initech"]}}},
    }
    assert grouped(stack, mixed, by_subject) == {("acme",): "7", ("initech",): "32"}


def test_group_by_with_windows(stack: Stack) -> None:
    meter = make_meter(stack)
    load(
        stack,
        [
            ev("2026-01-01T00:00:00Z", 1, model="a"),
            ev("2026-01-01T00:00:00Z", 2, model="b"),
            ev("2026-01-01T01:00:00Z", 4, model="a"),
        ],
    )
    result = rows(stack, meter, {**DAY, "granularity": "PT1H", "group_by_dimensions": ["model"]})
    assert [(r["from"], r["dimensions"]["model"], r["value"]) for r in result] == [
        ("2026-01-01T00:00:00Z", "a", "1"),
        ("2026-01-01T00:00:00Z", "b", "2"),
        ("2026-01-01T01:00:00Z", "a", "4"),
    ]


FILTER_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"model": {"eq": "gpt-4o"}}, "35"),
    ({"model": {"neq": "gpt-4o"}}, "28"),
    ({"model": {"in": ["claude", "gpt-4o-mini"]}}, "12"),
    ({"model": {"nin": ["claude", "gpt-4o-mini"]}}, "51"),
    ({"model": {"contains": "gpt"}}, "39"),
    ({"model": {"ncontains": "gpt"}}, "24"),
    ({"model": {"and": [{"contains": "gpt"}, {"neq": "gpt-4o"}]}}, "4"),
    ({"model": {"or": [{"eq": "claude"}, {"eq": "gpt-4o-mini"}]}}, "12"),
    ({"model": {"exists": True}}, "47"),
    ({"model": {"exists": False}}, "16"),
    ({"model": {"eq": "gpt-4o"}, "kind": {"eq": "input"}}, "33"),
    ({"model": {"eq": "nothing"}}, None),
    ({"subject": {"eq": "acme"}}, "7"),
    ({"subject": {"in": ["globex", "initech"]}}, "56"),
    ({"subject": {"in": ["nobody"]}}, None),
    ({"subject": {"eq": "acme"}, "model": {"eq": "gpt-4o"}}, "3"),
]


def test_filters(stack: Stack, mixed: dict[str, Any]) -> None:
    # One stack for every case (loading the events dominates); report every mismatch at once.
    mismatches = []
    for filters, expected in FILTER_CASES:
        result = rows(stack, mixed, {**DAY, "filters": {"dimensions": filters}})
        got = [r["value"] for r in result]
        if got != ([expected] if expected is not None else []):
            mismatches.append((filters, expected, got))
    assert mismatches == []


# -- CSV -----------------------------------------------------------------------------------------
def csv_rows(stack: Stack, meter: dict[str, Any], body: dict[str, Any]) -> list[list[str]]:
    resp = query(stack, meter, body, headers={"Accept": "text/csv"})
    assert resp.status == 200, resp
    assert resp.headers.get("content-type", "").startswith("text/csv")
    contract.validate(resp, "query-meter")
    return list(csv.reader(io.StringIO(resp.text)))


def test_csv(stack: Stack, mixed: dict[str, Any]) -> None:
    assert csv_rows(stack, mixed, DAY) == [
        ["from", "to", "value"],
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "63"],
    ]
    # subject comes first, then the other dimensions in group-by order
    body = {
        **DAY,
        "group_by_dimensions": ["kind", "subject", "model"],
        "filters": {"dimensions": {"subject": {"eq": "acme"}}},
    }
    table = csv_rows(stack, mixed, body)
    assert table[0] == ["from", "to", "subject", "kind", "model", "value"]
    assert sorted(table[1:]) == [
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "acme", "input", "gpt-4o", "1"],
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "acme", "input", "gpt-4o-mini", "4"],
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "acme", "output", "gpt-4o", "2"],
    ]


def test_csv_empty_has_a_header(stack: Stack) -> None:
    meter = make_meter(stack)
    assert csv_rows(stack, meter, {**DAY, "group_by_dimensions": ["model"]}) == [
        ["from", "to", "model", "value"]
    ]


# -- errors and roles ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
        ({**DAY, "time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({**DAY, "group_by_dimensions": ["colour"]}, "group_by_dimensions[0]"),
        ({**DAY, "group_by_dimensions": ["model", "colour"]}, "group_by_dimensions[1]"),
        ({"from": "2026-01-01T00:00:30Z", "to": "2026-01-02T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00.5Z"}, "to"),
        ({**DAY, "granularity": "PT5M"}, "granularity"),
        ({"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"}, "from"),
        ({**DAY, "colour": "blue"}, "colour"),
        ({**DAY, "filters": {"dimensions": {"colour": {"eq": "x"}}}}, "filters.dimensions.colour"),
        ({**DAY, "filters": {"dimensions": {"model": {"eq": "a", "neq": "b"}}}}, "filters.dimensions.model"),
        ({**DAY, "filters": {"dimensions": {"subject": {"neq": "acme"}}}}, "filters.dimensions.subject"),
        ({**DAY, "filters": {"dimensions": {"model": {"in": []}}}}, "filters.dimensions.model.in"),
    ],
)
def test_bad_queries(stack: Stack, body: dict[str, Any], field: str) -> None:
    meter = make_meter(stack)
    params = bad(stack, meter, body)["invalid_parameters"]
    assert params[0]["field"] == field, params


def test_bad_granularity_lists_choices(stack: Stack) -> None:
    meter = make_meter(stack)
    [param] = bad(stack, meter, {**DAY, "granularity": "P1W"})["invalid_parameters"]
    assert param["rule"] == "enum"
    assert param["choices"] == ["PT1M", "PT1H", "P1D", "P1M"]


def test_unknown_meter_is_404(stack: Stack) -> None:
    resp = stack.request("POST", "/meters/01ARZ3NDEKTSV4RRFFQ69G5FAV/query", DAY)
    assert resp.status == 404, resp
    contract.validate(resp, "query-meter")


def test_deleted_meter_is_404(stack: Stack) -> None:
    meter = make_meter(stack)
    assert stack.request("DELETE", f"/meters/{meter['id']}").status == 204
    assert query(stack, meter, DAY).status == 404


def test_roles(stack: Stack) -> None:
    mixed = make_meter(stack)
    assert query(stack, mixed, DAY, token=VIEWER).status == 200
    resp = query(stack, mixed, DAY, token=INGESTER)
    assert resp.status == 403, resp
    contract.validate(resp, "query-meter")
    assert query(stack, mixed, DAY, token=None).status == 401
