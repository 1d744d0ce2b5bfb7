"""Every aggregation with exact numbers, the value/dimension parsing rules, and windows combined.

engine-rules §2.1-2.2, product §3.2-3.3.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Stack

DAY = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"}


def meter(stack: Stack, key: str, aggregation: str, **extra: Any) -> str:
    body = {"key": key, "name": key, "aggregation": aggregation, "event_type": "usage", **extra}
    if aggregation != "count" and "value_property" not in body:
        body["value_property"] = "$.v"
    resp = stack.request("POST", "/meters", body)
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def ev(i: int, minute: str, data: dict[str, Any], subject: str = "acme") -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "source": "t",
        "type": "usage",
        "subject": subject,
        "time": f"2026-05-01T{minute}Z",
        "data": data,
    }


def rows(stack: Stack, meter_id: str, **query: Any) -> list[tuple[str, str, dict[str, str]]]:
    resp = stack.request("POST", f"/meters/{meter_id}/query", {**DAY, **query})
    assert resp.status == 200, resp
    return [(r["from"], r["value"], r["dimensions"]) for r in resp.json()["data"]]


def values(stack: Stack, meter_id: str, **query: Any) -> list[str]:
    return [v for _, v, _ in rows(stack, meter_id, **query)]


@pytest.fixture
def loaded(stack: Stack) -> tuple[Stack, dict[str, str]]:
    ids = {
        agg: meter(stack, f"m_{agg}", agg)
        for agg in ("sum", "count", "unique_count", "avg", "min", "max", "latest")
    }
    # Arrival order is not time order: the latest event (10:30) arrives first.
    stack.ingest(
        [
            ev(1, "10:30:00", {"v": "2.5"}),
            ev(2, "10:00:00", {"v": 10}),
            ev(3, "10:10:00", {"v": "-4"}),
            ev(4, "10:20:00", {"v": 10}),
            ev(5, "10:25:00", {"v": "ten"}),  # non-numeric: skipped by numeric meters, flagged
            ev(6, "10:26:00", {}),  # missing value
        ]
    )
    stack.drain()
    return stack, ids


def test_each_aggregation_over_a_day(loaded: tuple[Stack, dict[str, str]]) -> None:
    stack, ids = loaded
    assert values(stack, ids["sum"]) == ["18.5"]
    assert values(stack, ids["count"]) == ["6"]  # count needs no value
    assert values(stack, ids["avg"]) == ["4.625"]
    assert values(stack, ids["min"]) == ["-4"]
    assert values(stack, ids["max"]) == ["10"]
    assert values(stack, ids["latest"]) == ["2.5"]  # greatest event time, though it arrived first
    # unique_count stringifies: 10 and 10 are one value, "ten" counts, the missing one does not.
    assert values(stack, ids["unique_count"]) == ["4"]


def stored(stack: Stack, event_id: str) -> dict[str, Any]:
    """The stored event, listed within the fixture's day (a bounded walk, however old the day is)."""
    window = f"filter[time][gte]={DAY['from']}&filter[time][lt]={DAY['to']}"
    listed = stack.request("GET", f"/events?filter[id][eq]={event_id}&{window}").json()
    assert len(listed["data"]) == 1, listed
    return dict(listed["data"][0])


def test_invalid_values_are_flagged_on_the_stored_event(loaded: tuple[Stack, dict[str, str]]) -> None:
    stack, _ = loaded
    assert any("not a number" in e["message"] for e in stored(stack, "e5")["validation_errors"])
    assert any("missing value property" in e["message"] for e in stored(stack, "e6")["validation_errors"])


def test_latest_per_window_and_minute_windows(loaded: tuple[Stack, dict[str, str]]) -> None:
    stack, ids = loaded
    assert rows(stack, ids["latest"], granularity="PT1H") == [("2026-05-01T10:00:00Z", "2.5", {})]
    assert values(stack, ids["max"], granularity="PT1M") == ["10", "-4", "10", "2.5"]
    assert values(stack, ids["min"], **{"from": "2026-05-01T10:05:00Z", "to": "2026-05-01T10:21:00Z"}) == [
        "-4"
    ]


def test_unique_count_is_not_the_sum_of_its_windows(stack: Stack) -> None:
    users = meter(stack, "users", "unique_count", value_property="$.user")
    events = [
        ev(i, f"{h:02d}:{i % 60:02d}:00", {"user": f"u{i % 3}"}) for i, h in enumerate([1, 1, 2, 2, 3, 3, 9])
    ]
    stack.ingest(events)
    stack.drain()
    hourly = values(stack, users, granularity="PT1H")
    assert hourly == ["2", "2", "2", "1"]
    assert values(stack, users, granularity="P1D") == ["3"]  # u0, u1, u2 — not 7
    assert values(stack, users) == ["3"]
    # A range that decomposes into minute, quarter-hour and hour buckets still unions them.
    assert values(stack, users, **{"from": "2026-05-01T01:01:00Z", "to": "2026-05-01T03:59:00Z"}) == ["3"]


def test_unique_count_exact_at_scale(stack: Stack) -> None:
    users = meter(stack, "sessions", "unique_count", value_property="$.s")
    events = [ev(i, f"12:{i % 60:02d}:00", {"s": f"session-{i % 1500}"}) for i in range(3000)]
    stack.ingest(events[:1000])
    stack.ingest(events[1000:2000])
    stack.ingest(events[2000:])
    stack.drain()
    assert values(stack, users) == ["1500"]


def test_dimension_values_stringify(stack: Stack) -> None:
    m = meter(stack, "calls", "count", dimensions={"k": "$.k"})
    samples = ["a", 123, 1.5, True, None, [1, 2, 3], {"b": "c"}]
    stack.ingest(
        [ev(i, f"08:{i:02d}:00", {"k": v}) for i, v in enumerate(samples)] + [ev(99, "08:30:00", {})]
    )
    stack.drain()
    got = sorted((d["k"], v) for _, v, d in rows(stack, m, group_by_dimensions=["k"]))
    assert got == [("", "3"), ("1.5", "1"), ("123", "1"), ("a", "1"), ("null", "1"), ("true", "1")]


def test_numeric_strings_parse_exactly(stack: Stack) -> None:
    m = meter(stack, "money", "sum")
    stack.ingest(
        [
            ev(1, "01:00:00", {"v": "0.1"}),
            ev(2, "01:00:00", {"v": 0.2}),
            ev(3, "01:00:00", {"v": "1e2"}),
            ev(4, "01:00:00", {"v": " 7 "}),
            ev(5, "01:00:00", {"v": "NaN"}),
            ev(6, "01:00:00", {"v": True}),
        ]
    )
    stack.drain()
    assert values(stack, m) == ["107.3"]  # no binary float drift; NaN and booleans skipped


def test_numeric_strings_are_ascii_numbers_only(stack: Stack) -> None:
    # Python's Decimal also reads "1_000" (digit grouping) and other scripts' digits (Arabic-Indic,
    # full-width); the reference (strconv.ParseFloat) and every client reading the value as a
    # JSON-style number don't: they counted as 1000 and 12. They are "not a number" like "ten".
    m = meter(stack, "strict", "sum")
    stack.ingest(
        [
            ev(1, "02:00:00", {"v": "1_000"}),
            ev(2, "02:00:00", {"v": "\u0661\u0662"}),
            ev(3, "02:00:00", {"v": "\uff11\uff12"}),
            ev(4, "02:00:00", {"v": "\u00a012"}),
            ev(5, "02:00:00", {"v": "+5"}),
            ev(6, "02:00:00", {"v": ".5e1"}),
        ]
    )
    stack.drain()
    assert values(stack, m) == ["10"]  # +5 and .5e1 only
    for i in (1, 2, 3, 4):
        assert any("not a number" in e["message"] for e in stored(stack, f"e{i}")["validation_errors"]), i


def test_events_from_is_honoured(stack: Stack) -> None:
    m = meter(stack, "late_start", "sum", events_from="2026-05-01T12:00:00Z")
    stack.ingest([ev(1, "11:59:59", {"v": 1}), ev(2, "12:00:00", {"v": 2}), ev(3, "13:00:00", {"v": 4})])
    stack.drain()
    assert values(stack, m) == ["6"]


def test_late_events_of_any_age_are_reflected(stack: Stack) -> None:
    m = meter(stack, "late", "sum")
    stack.ingest([ev(1, "09:00:00", {"v": 1})])
    stack.drain()
    stack.ingest(
        [
            {
                "id": "old",
                "source": "t",
                "type": "usage",
                "subject": "acme",
                "time": "2024-02-29T23:59:00Z",
                "data": {"v": 5},
            }
        ]
    )
    stack.drain()
    whole = stack.request(
        "POST",
        f"/meters/{m}/query",
        {"from": "2024-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z", "granularity": "P1M"},
    )
    assert [(r["from"], r["value"]) for r in whole.json()["data"]] == [
        ("2024-02-01T00:00:00Z", "5"),
        ("2026-05-01T00:00:00Z", "1"),
    ]
    # Without `from`, the query starts at the earliest usage.
    assert [r["value"] for r in stack.request("POST", f"/meters/{m}/query", {}).json()["data"]] == ["6"]


def test_customer_id_groups_and_filters(stack: Stack) -> None:
    m = meter(stack, "per_customer", "sum")
    acme = stack.request(
        "POST",
        "/customers",
        {"key": "acme", "name": "Acme", "usage_attribution": {"subject_keys": ["acme-a", "acme-b"]}},
    )
    assert acme.status == 201, acme
    acme_id = acme.json()["id"]
    stack.ingest(
        [
            ev(1, "10:00:00", {"v": 1}, "acme-a"),
            ev(2, "10:00:00", {"v": 2}, "acme-b"),
            ev(3, "10:00:00", {"v": 4}, "acme"),
            ev(4, "10:00:00", {"v": 8}, "stranger"),
        ]
    )
    stack.drain()
    grouped = sorted((d["customer_id"], v) for _, v, d in rows(stack, m, group_by_dimensions=["customer_id"]))
    assert grouped == [("", "8"), (acme_id, "7")]  # the customer's key attributes too
    only = rows(stack, m, filters={"dimensions": {"customer_id": {"eq": acme_id}}})
    assert [v for _, v, _ in only] == ["7"]
    csv = stack.request(
        "POST",
        f"/meters/{m}/query",
        {
            **DAY,
            "group_by_dimensions": ["customer_id"],
            "filters": {"dimensions": {"customer_id": {"in": [acme_id]}}},
        },
        headers={"Accept": "text/csv"},
    )
    assert csv.text.splitlines() == [
        "from,to,customer_id,customer_key,customer_name,value",
        f"2026-05-01T00:00:00Z,2026-05-02T00:00:00Z,{acme_id},acme,Acme,7",
    ]


def test_data_too_large_to_store_as_usage_is_the_events_problem_not_the_batchs(stack: Stack) -> None:
    """A dimension value over 1,024 bytes can't be kept in counter items (nor a 300 KB unique
    value inline): the event is stored with an invalid_value for that meter and counted by the
    others; incompressible values make sure nothing shrinks by luck; no batch fails."""
    import secrets

    grouped = meter(stack, "m_grouped", "count", dimensions={"model": "$.model"})
    users = meter(stack, "m_users", "unique_count", value_property="$.user")
    plain = meter(stack, "m_plain", "count")
    huge = secrets.token_hex(150_000)  # 300 KB
    stack.ingest(
        [
            ev(1, "10:00:00", {"model": huge[:2000], "user": huge}),
            ev(2, "10:01:00", {"model": "a", "user": "b"}),
        ]
    )
    stack.drain()  # would raise on a failed batch
    assert values(stack, plain) == ["2"]
    assert values(stack, users) == ["2"]  # the long value counts, kept as a hash
    assert values(stack, grouped) == ["1"]
    errors = [e for e in stored(stack, "e1")["validation_errors"] if e["code"] != "customer_not_found"]
    assert [e["code"] for e in errors] == ["invalid_value"]
    assert (
        "longer than 1024 bytes" in errors[0]["message"] and errors[0]["attributes"]["meter"] == "m_grouped"
    )
