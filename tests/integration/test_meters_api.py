"""Meters CRUD over /v3/openmeter/meters: validation, listing, updates, soft delete and roles."""

from __future__ import annotations

from typing import Any

import pytest

from shared import bootstrap
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import VIEWER, Stack
from tests.support.problems import problem

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")

UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def meter_body(key: str = "tokens_total", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": "Tokens total",
        "description": "AI token usage",
        "aggregation": "sum",
        "event_type": "prompt",
        "value_property": "$.tokens",
        "dimensions": {"model": "$.model", "type": "$.type"},
        "labels": {"env": "test"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(stack: Stack, key: str = "tokens_total", **overrides: Any) -> dict[str, Any]:
    resp = stack.request("POST", "/meters", meter_body(key, **overrides))
    assert resp.status == 201, resp
    return resp.json()


def params(resp: Any) -> list[tuple[str, str | None]]:
    return [(p["field"], p.get("rule")) for p in problem(resp, 400)["invalid_parameters"]]


def keys(resp: Any) -> list[str]:
    assert resp.status == 200, resp
    return [m["key"] for m in resp.json()["data"]]


# -- create --------------------------------------------------------------------------------------
def test_create_returns_the_meter(stack: Stack) -> None:
    resp = stack.request("POST", "/meters", meter_body())
    assert resp.status == 201, resp
    assert resp.headers.get("content-type") == "application/json"
    body = resp.json()
    contract.validate_component(body, "Meter")
    assert body["key"] == "tokens_total"
    assert body["aggregation"] == "sum"
    assert body["value_property"] == "$.tokens"
    assert body["dimensions"] == {"model": "$.model", "type": "$.type"}
    assert body["labels"] == {"env": "test"}
    assert body["created_at"] == body["updated_at"]
    assert "deleted_at" not in body


def test_create_count_meter_without_value_property(stack: Stack) -> None:
    body = create(stack, "requests", aggregation="count", value_property=None, dimensions=None, labels=None)
    contract.validate_component(body, "Meter")
    assert "value_property" not in body
    assert body["dimensions"] == {}


def test_create_with_events_from(stack: Stack) -> None:
    body = create(stack, events_from="2026-01-01T05:30:00+05:30")
    assert body["events_from"] == "2026-01-01T00:00:00Z"


def test_duplicate_key_is_409(stack: Stack) -> None:
    first = create(stack)
    resp = stack.request("POST", "/meters", meter_body(name="Another"))
    body = problem(resp, 409)
    assert "tokens_total" in body["detail"]
    assert body.get("conflicting_entity_id") == first["id"]
    assert keys(stack.request("GET", "/meters")) == ["tokens_total"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"key": "Tokens-Total"}, [("key", "matches_regex")]),
        ({"key": "tokens__total"}, [("key", "matches_regex")]),
        ({"key": "_tokens"}, [("key", "matches_regex")]),
        ({"key": "k" * 65}, [("key", "max_length")]),
        ({"name": ""}, [("name", "min_length")]),
        ({"aggregation": "median"}, [("aggregation", "enum")]),
        ({"colour": "blue"}, [("colour", "unknown_property")]),
        ({"value_property": "tokens"}, [("value_property", "invalid")]),
        ({"value_property": "$["}, [("value_property", "invalid")]),
        ({"value_property": ""}, [("value_property", "min_length")]),
        ({"dimensions": {"model": "model"}}, [("dimensions", "invalid")]),
        ({"dimensions": {"subject": "$.s"}}, [("dimensions", "invalid")]),
        ({"dimensions": {"customer_id": "$.c"}}, [("dimensions", "invalid")]),
        ({"dimensions": {"9lives": "$.c"}}, [("dimensions", "invalid")]),
        ({"dimensions": {"m": "$.tokens"}}, [("dimensions", "invalid")]),
        ({"labels": {"kong_team": "a"}}, [("labels", "invalid")]),
        ({"labels": {"env": "has space"}}, [("labels", "invalid")]),
        ({"labels": {"env": ""}}, [("labels", "invalid")]),
        ({"events_from": "2026-01-01T00:00:00"}, [("events_from", "is_date_time")]),
        ({"events_from": 1767225600}, [("events_from", "is_date_time")]),
        ({"events_from": "1767225600"}, [("events_from", "is_date_time")]),
        ({"events_from": "2026-01-01T00:00Z"}, [("events_from", "is_date_time")]),
        ({"event_type": ""}, [("event_type", "min_length")]),
        # Unbounded strings: 20 long dimension paths overflowed the meter's DynamoDB item (a 500); an
        # event type longer than an event's `type` may be (256 bytes) could never match.
        (
            {"dimensions": {f"d{i}": "$." + "a" * 30_000 + str(i) for i in range(20)}},
            [("dimensions", "invalid")],
        ),
        ({"value_property": "$." + "a" * 1100}, [("value_property", "max_length")]),
        ({"event_type": "e" * 257}, [("event_type", "invalid")]),
        ({"event_type": "\u00e9" * 129}, [("event_type", "invalid")]),
    ],
)
def test_create_validation(stack: Stack, overrides: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    resp = stack.request("POST", "/meters", meter_body(**overrides))
    assert params(resp) == expected
    contract.validate(resp, "create-meter")
    assert keys(stack.request("GET", "/meters")) == []


def test_value_property_required_for_sum(stack: Stack) -> None:
    body = meter_body()
    del body["value_property"]
    resp = stack.request("POST", "/meters", body)
    assert params(resp) == [("value_property", "required")]


@pytest.mark.parametrize("aggregation", ["avg", "min", "max", "unique_count", "latest"])
def test_value_property_required_for_non_count(stack: Stack, aggregation: str) -> None:
    resp = stack.request("POST", "/meters", meter_body(aggregation=aggregation, value_property=None))
    assert params(resp) == [("value_property", "required")]


def test_missing_required_fields(stack: Stack) -> None:
    resp = stack.request("POST", "/meters", {"key": "x"})
    assert sorted(params(resp)) == [
        ("aggregation", "required"),
        ("event_type", "required"),
        ("name", "required"),
    ]


@pytest.mark.parametrize("raw", [b"{nope", b"[]", b'"meter"'])
def test_create_non_object_body(stack: Stack, raw: bytes) -> None:
    assert params(stack.request("POST", "/meters", raw))[0][0] == "body"


# -- get -----------------------------------------------------------------------------------------
def test_get_by_id_and_by_key(stack: Stack) -> None:
    created = create(stack)
    by_id = stack.request("GET", f"/meters/{created['id']}")
    by_key = stack.request("GET", "/meters/tokens_total")
    assert by_id.status == by_key.status == 200
    assert by_id.json() == by_key.json() == created


@pytest.mark.parametrize("ref", [UNKNOWN_ULID, "no_such_meter"])
def test_get_unknown_is_404(stack: Stack, ref: str) -> None:
    create(stack)
    body = problem(stack.request("GET", f"/meters/{ref}"), 404)
    assert ref in body["detail"]


# -- list ----------------------------------------------------------------------------------------
@pytest.fixture
def five(stack: Stack) -> list[dict[str, Any]]:
    names = {
        "alpha": "Alpha tokens",
        "bravo": "Bravo calls",
        "charlie": "Charlie TOKENS",
        "delta": "Delta",
        "echo": "Echo",
    }
    return [create(stack, key, name=name) for key, name in names.items()]


def test_list_defaults(stack: Stack, five: list[dict[str, Any]]) -> None:
    resp = stack.request("GET", "/meters")
    assert keys(resp) == ["alpha", "bravo", "charlie", "delta", "echo"]  # created_at ascending
    assert resp.json()["meta"] == {"page": {"number": 1, "size": 100, "total": 5}}
    contract.validate_component(resp.json(), "MeterPagePaginatedResponse")


def test_list_pages(stack: Stack, five: list[dict[str, Any]]) -> None:
    first = stack.request("GET", "/meters?page[size]=2")
    assert keys(first) == ["alpha", "bravo"]
    assert first.json()["meta"]["page"] == {"number": 1, "size": 2, "total": 5}
    third = stack.request("GET", "/meters?page[size]=2&page[number]=3")
    assert keys(third) == ["echo"]
    assert third.json()["meta"]["page"] == {"number": 3, "size": 2, "total": 5}
    beyond = stack.request("GET", "/meters?page[size]=2&page[number]=4")
    assert keys(beyond) == []
    assert beyond.json()["meta"]["page"]["total"] == 5


def test_list_pages_url_encoded(stack: Stack, five: list[dict[str, Any]]) -> None:
    assert keys(stack.request("GET", "/meters?page%5Bsize%5D=1&page%5Bnumber%5D=2")) == ["bravo"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter[key][eq]=charlie", ["charlie"]),
        ("filter[key]=delta", ["delta"]),
        ("filter[key][neq]=alpha", ["bravo", "charlie", "delta", "echo"]),
        ("filter[key][oeq]=alpha,echo", ["alpha", "echo"]),
        ("filter[name][contains]=tokens", ["alpha", "charlie"]),
        ("filter[name][ocontains]=calls,delta", ["bravo", "delta"]),
        ("filter[key][eq]=alpha&filter[name][contains]=bravo", []),
        ("filter[key][eq]=nothing", []),
    ],
)
def test_list_filters(stack: Stack, five: list[dict[str, Any]], query: str, expected: list[str]) -> None:
    resp = stack.request("GET", f"/meters?{query}")
    assert keys(resp) == expected
    assert resp.json()["meta"]["page"]["total"] == len(expected)


def test_filter_total_counts_all_matches_not_the_page(stack: Stack, five: list[dict[str, Any]]) -> None:
    resp = stack.request("GET", "/meters?filter[key][neq]=alpha&page[size]=1")
    assert keys(resp) == ["bravo"]
    assert resp.json()["meta"]["page"]["total"] == 4


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("key desc", ["echo", "delta", "charlie", "bravo", "alpha"]),
        ("key%20desc", ["echo", "delta", "charlie", "bravo", "alpha"]),
        ("key asc", ["alpha", "bravo", "charlie", "delta", "echo"]),
        ("name", ["alpha", "bravo", "charlie", "delta", "echo"]),
        ("created_at desc", ["echo", "delta", "charlie", "bravo", "alpha"]),
    ],
)
def test_list_sort(stack: Stack, five: list[dict[str, Any]], sort: str, expected: list[str]) -> None:
    assert keys(stack.request("GET", f"/meters?sort={sort}")) == expected


def test_list_sort_by_aggregation_then_key(stack: Stack) -> None:
    create(stack, "b_sum")
    create(stack, "a_count", aggregation="count", value_property=None)
    create(stack, "c_avg", aggregation="avg")
    assert keys(stack.request("GET", "/meters?sort=aggregation,key desc")) == ["c_avg", "a_count", "b_sum"]


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        ("sort=colour", "sort", "enum"),
        ("sort=key sideways", "sort", "invalid"),
        ("filter[colour]=x", "filter[colour]", "unknown_property"),
        ("filter[key][gt]=x", "filter[key][gt]", "enum"),
        ("page[size]=0", "page[size]", "invalid"),
        ("page[size]=abc", "page[size]", "is_integer"),
        ("page[number]=0", "page[number]", "invalid"),
    ],
)
def test_list_bad_params(stack: Stack, query: str, field: str, rule: str) -> None:
    resp = stack.request("GET", f"/meters?{query}")
    [param] = problem(resp, 400)["invalid_parameters"]
    assert (param["field"], param["rule"], param["source"]) == (field, rule, "query")
    contract.validate(resp, "list-meters")


def test_bad_sort_lists_the_choices(stack: Stack) -> None:
    [param] = problem(stack.request("GET", "/meters?sort=colour"), 400)["invalid_parameters"]
    assert set(param["choices"]) == {"key", "name", "aggregation", "created_at", "updated_at"}


# -- update --------------------------------------------------------------------------------------
def test_update_mutable_fields(stack: Stack) -> None:
    created = create(stack)
    change = {
        "name": "Renamed",
        "description": "new words",
        "labels": {"env": "prod", "team": "ai"},
        "dimensions": {"model": "$.model", "region": "$.region"},
    }
    resp = stack.request("PUT", f"/meters/{created['id']}", change)
    assert resp.status == 200, resp
    body = resp.json()
    contract.validate_component(body, "Meter")
    for name, value in change.items():
        assert body[name] == value
    for name in ("id", "key", "aggregation", "event_type", "value_property", "created_at"):
        assert body[name] == created[name]
    assert body["updated_at"] >= created["updated_at"]
    assert stack.request("GET", f"/meters/{created['id']}").json() == body


def test_update_by_key(stack: Stack) -> None:
    create(stack)
    resp = stack.request("PUT", "/meters/tokens_total", {"name": "By key"})
    assert resp.status == 200, resp
    assert stack.request("GET", "/meters/tokens_total").json()["name"] == "By key"


def test_partial_update_keeps_other_fields(stack: Stack) -> None:
    created = create(stack)
    body = stack.request("PUT", f"/meters/{created['id']}", {"name": "Only name"}).json()
    assert body["description"] == created["description"]
    assert body["labels"] == created["labels"]
    assert body["dimensions"] == created["dimensions"]


@pytest.mark.parametrize(
    "change",
    [
        {"key": "other_key"},
        {"aggregation": "count"},
        {"event_type": "other"},
        {"value_property": "$.other"},
        {"events_from": "2026-01-01T00:00:00Z"},
        {"id": UNKNOWN_ULID},
    ],
)
def test_update_rejects_immutable_fields(stack: Stack, change: dict[str, Any]) -> None:
    created = create(stack)
    resp = stack.request("PUT", f"/meters/{created['id']}", change)
    [(field, rule)] = params(resp)
    assert (field, rule) == (next(iter(change)), "unknown_property")
    contract.validate(resp, "update-meter")
    assert stack.request("GET", f"/meters/{created['id']}").json() == created


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"labels": {"konnect_x": "a"}}, "labels"),
        ({"dimensions": {"subject": "$.s"}}, "dimensions"),
        ({"dimensions": {"m": "not-a-path"}}, "dimensions"),
    ],
)
def test_update_validation(stack: Stack, change: dict[str, Any], field: str) -> None:
    created = create(stack)
    assert params(stack.request("PUT", f"/meters/{created['id']}", change))[0][0] == field


def test_update_unknown_is_404(stack: Stack) -> None:
    problem(stack.request("PUT", f"/meters/{UNKNOWN_ULID}", {"name": "x"}), 404)


# -- delete --------------------------------------------------------------------------------------
def test_delete_then_gone_and_key_reusable(stack: Stack) -> None:
    created = create(stack)
    other = create(stack, "other")
    resp = stack.request("DELETE", f"/meters/{created['id']}")
    assert resp.status == 204, resp
    assert resp.text == ""
    problem(stack.request("GET", f"/meters/{created['id']}"), 404)
    problem(stack.request("GET", "/meters/tokens_total"), 404)
    listing = stack.request("GET", "/meters")
    assert keys(listing) == ["other"]
    assert listing.json()["meta"]["page"]["total"] == 1
    problem(stack.request("DELETE", f"/meters/{created['id']}"), 404)
    problem(stack.request("PUT", f"/meters/{created['id']}", {"name": "zombie"}), 404)
    again = create(stack)
    assert again["id"] != created["id"]
    assert stack.request("GET", "/meters/tokens_total").json()["id"] == again["id"]
    assert stack.request("GET", f"/meters/{other['id']}").status == 200


def test_delete_by_key(stack: Stack) -> None:
    create(stack)
    assert stack.request("DELETE", "/meters/tokens_total").status == 204
    assert keys(stack.request("GET", "/meters")) == []


# -- roles and routing ---------------------------------------------------------------------------
def test_viewer_reads_but_cannot_write(stack: Stack) -> None:
    created = create(stack)
    assert stack.request("GET", "/meters", token=VIEWER).status == 200
    assert stack.request("GET", f"/meters/{created['id']}", token=VIEWER).status == 200
    problem(stack.request("POST", "/meters", meter_body("another"), token=VIEWER), 403)
    problem(stack.request("PUT", f"/meters/{created['id']}", {"name": "x"}, token=VIEWER), 403)
    problem(stack.request("DELETE", f"/meters/{created['id']}", token=VIEWER), 403)
    assert stack.request("GET", f"/meters/{created['id']}").json() == created
    assert keys(stack.request("GET", "/meters")) == ["tokens_total"]


def test_viewer_cannot_write_via_a_query_suffix(stack: Stack) -> None:
    # Only POST .../{id}/query is a read; a meter keyed "query" must not open writes to viewers.
    created = create(stack, "query")
    problem(stack.request("PUT", "/meters/query", {"name": "x"}, token=VIEWER), 403)
    problem(stack.request("DELETE", "/meters/query", token=VIEWER), 403)
    assert stack.request("GET", f"/meters/{created['id']}").status == 200


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_no_token_is_401(stack: Stack, method: str) -> None:
    problem(stack.request(method, "/meters", meter_body(), token=None), 401)


def test_bad_token_is_401(stack: Stack) -> None:
    problem(stack.request("GET", "/meters", token="mlt_wrong"), 401)


def test_unknown_route_is_404_problem(stack: Stack) -> None:
    problem(stack.request("GET", "/nowhere"), 404)
    problem(stack.request("PATCH", "/meters"), 405)  # the path exists: Allow names its methods


# -- races ---------------------------------------------------------------------------------------
def test_update_racing_a_delete_does_not_resurrect_the_meter(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create(stack)
    service = bootstrap.meters()
    stale = service.get(created["id"])  # the PUT read the meter just before the DELETE landed
    assert stack.request("DELETE", f"/meters/{created['id']}").status == 204
    with monkeypatch.context() as m:
        m.setattr(service, "get", lambda _ref: stale)
        problem(stack.request("PUT", f"/meters/{created['id']}", {"name": "Zombie"}), 404)
    problem(stack.request("GET", f"/meters/{created['id']}"), 404)
    assert keys(stack.request("GET", "/meters")) == []
    # The key was released by the delete and stays reusable exactly once.
    create(stack)
    problem(stack.request("POST", "/meters", meter_body()), 409)


def test_delete_racing_a_delete_is_404(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    created = create(stack)
    service = bootstrap.meters()
    stale = service.get(created["id"])
    assert stack.request("DELETE", f"/meters/{created['id']}").status == 204
    replacement = create(stack)  # the key is taken again
    with monkeypatch.context() as m:
        m.setattr(service, "get", lambda _ref: stale)
        problem(stack.request("DELETE", f"/meters/{created['id']}"), 404)
    assert stack.request("GET", "/meters/tokens_total").json()["id"] == replacement["id"]
    problem(stack.request("POST", "/meters", meter_body()), 409)
