"""Features over /v3/openmeter/features: CRUD, meter and filter checks, unit cost, PATCH, archive, roles."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from shared import bootstrap
from shared.core.errors import NotFound
from shared.features import views as feature_views
from shared.features.models import LlmUnitCost, ManualUnitCost, TokenType
from shared.features.repository import FeatureRepository
from shared.settings import get_settings
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import VIEWER, Stack
from tests.support.problems import problem

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")

UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
LLM_DYNAMIC = {
    "type": "llm",
    "provider_property": "provider",
    "model_property": "model",
    "token_type_property": "type",
}


def create_meter(stack: Stack, key: str = "llm_tokens", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": "LLM tokens",
        "aggregation": "sum",
        "event_type": "prompt",
        "value_property": "$.tokens",
        "dimensions": {"provider": "$.provider", "model": "$.model", "type": "$.type"},
    }
    body.update(overrides)
    resp = stack.request("POST", "/meters", {k: v for k, v in body.items() if v is not None})
    assert resp.status == 201, resp
    return resp.json()


def feature_body(key: str = "gpt_4_tokens", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "name": key.replace("_", " ").title()}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(stack: Stack, key: str = "gpt_4_tokens", **overrides: Any) -> dict[str, Any]:
    resp = stack.request("POST", "/features", feature_body(key, **overrides))
    assert resp.status == 201, resp
    return contract.validate(resp, "create-feature")


def params(resp: Any) -> list[tuple[str, str | None]]:
    return [(p["field"], p.get("rule")) for p in problem(resp, 400)["invalid_parameters"]]


def keys(resp: Any) -> list[str]:
    assert resp.status == 200, resp
    contract.validate(resp, "list-features")
    return [f["key"] for f in resp.json()["data"]]


def conflict(resp: Any, operation: str) -> dict[str, Any]:
    body = problem(resp, 409)
    contract.validate(resp, operation, response_ref="Conflict")
    return body


def get(stack: Stack, ref: str, status: int = 200) -> dict[str, Any]:
    resp = stack.request("GET", f"/features/{ref}")
    assert resp.status == status, resp
    return contract.validate(resp, "get-feature")


# -- create --------------------------------------------------------------------------------------
def test_create_static_feature(stack: Stack) -> None:
    resp = stack.request("POST", "/features", feature_body("support"))
    assert resp.status == 201, resp
    assert resp.headers.get("content-type") == "application/json"
    body = contract.validate(resp, "create-feature")
    assert set(body) == {"id", "key", "name", "created_at", "updated_at"}
    assert body["key"] == "support"
    assert body["created_at"] == body["updated_at"]


def test_create_metered_feature_with_filters_and_cost(stack: Stack) -> None:
    meter = create_meter(stack)
    filters = {"model": {"eq": "gpt-4"}, "type": {"or": [{"eq": "input"}, {"eq": "output"}]}}
    body = create(
        stack,
        description="GPT-4 tokens",
        labels={"team": "ai"},
        meter={"id": meter["id"], "filters": filters},
        unit_cost={"type": "manual", "amount": "0.0050"},
    )
    assert body["meter"] == {"id": meter["id"], "filters": filters}
    assert body["unit_cost"] == {"type": "manual", "amount": "0.0050"}
    assert body["description"] == "GPT-4 tokens"
    assert body["labels"] == {"team": "ai"}
    assert "deleted_at" not in body
    assert get(stack, body["id"]) == body
    assert get(stack, "gpt_4_tokens") == body


def test_meter_without_filters_and_any_aggregation(stack: Stack) -> None:
    # Entitlements decide which aggregations they need (OpenMeter #3146): features take any meter.
    for aggregation in ("sum", "count", "unique_count", "avg", "min", "max", "latest"):
        value = None if aggregation == "count" else "$.tokens"
        meter = create_meter(stack, f"m_{aggregation}", aggregation=aggregation, value_property=value)
        body = create(stack, f"f_{aggregation}", meter={"id": meter["id"]})
        assert body["meter"] == {"id": meter["id"]}


CREATE_INVALID: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"key": ""}, [("key", "min_length")]),
    ({"key": "k" * 65}, [("key", "max_length")]),
    ({"key": "GPT-4"}, [("key", "matches_regex")]),
    ({"key": 4}, [("key", "is_string")]),
    ({"name": ""}, [("name", "min_length")]),
    ({"name": "n" * 257}, [("name", "max_length")]),
    ({"description": "d" * 1025}, [("description", "max_length")]),
    ({"labels": {"kong_x": "a"}}, [("labels", "invalid")]),
    ({"id": UNKNOWN_ULID}, [("id", "unknown_property")]),
    ({"meter_id": UNKNOWN_ULID}, [("meter_id", "unknown_property")]),
    ({"meter": UNKNOWN_ULID}, [("meter", "is_object")]),
    ({"meter": {}}, [("meter.id", "required")]),
    ({"meter": {"id": "llm_tokens"}}, [("meter.id", "matches_regex")]),
    ({"meter": {"id": UNKNOWN_ULID, "key": "x"}}, [("meter.key", "unknown_property")]),
    ({"meter": {"id": UNKNOWN_ULID, "filters": []}}, [("meter.filters", "is_object")]),
    (
        {"meter": {"id": UNKNOWN_ULID, "filters": {f"d{i}": {"eq": "x"} for i in range(11)}}},
        [("meter.filters", "max_items")],
    ),
    ({"unit_cost": "0.5"}, [("unit_cost", "is_object")]),
]


def test_create_validation(stack: Stack, subtests: pytest.Subtests) -> None:
    for overrides, expected in CREATE_INVALID:
        with subtests.test(msg=str(overrides)[:80]):
            resp = stack.request("POST", "/features", {**feature_body(), **overrides})
            assert params(resp) == expected
            contract.validate(resp, "create-feature")
    assert keys(stack.request("GET", "/features")) == []


def test_missing_required_fields_and_bad_bodies(stack: Stack) -> None:
    assert sorted(params(stack.request("POST", "/features", {"description": "x"}))) == [
        ("key", "required"),
        ("name", "required"),
    ]
    for raw in (b"{nope", b"[]", b""):
        resp = stack.request("POST", "/features", raw)
        assert params(resp)[0][0] == "body", raw
        contract.validate(resp, "create-feature")


def test_meter_must_exist_and_be_live(stack: Stack) -> None:
    resp = stack.request("POST", "/features", feature_body(meter={"id": UNKNOWN_ULID}))
    assert params(resp) == [("meter.id", "invalid")]
    contract.validate(resp, "create-feature")
    meter = create_meter(stack)
    assert stack.request("DELETE", f"/meters/{meter['id']}").status == 204
    resp = stack.request("POST", "/features", feature_body(meter={"id": meter["id"]}))
    assert params(resp) == [("meter.id", "invalid")]
    assert keys(stack.request("GET", "/features")) == []


FILTER_INVALID: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"region": {"eq": "eu"}}, [("meter.filters.region", "invalid")]),
    ({"subject": {"eq": "acme"}}, [("meter.filters.subject", "invalid")]),
    ({"model": {"like": "gpt"}}, [("meter.filters.model.like", "enum")]),
    ({"model": {"eq": "a", "neq": "b"}}, [("meter.filters.model", "invalid")]),
    ({"model": {}}, [("meter.filters.model", "invalid")]),
    ({"model": "gpt-4"}, [("meter.filters.model", "invalid")]),
    ({"model": {"eq": 4}}, [("meter.filters.model.eq", "invalid")]),
    ({"model": {"in": []}}, [("meter.filters.model.in", "invalid")]),
    ({"model": {"exists": "yes"}}, [("meter.filters.model.exists", "invalid")]),
    ({"model": {"and": [{"exists": True}]}}, [("meter.filters.model.and[0].exists", "enum")]),
    # 100 values of 100 KB: the feature's DynamoDB item overflowed (a 500).
    ({"model": {"in": ["v" * 100_000] * 100}}, [("meter.filters.model", "invalid")]),
]


def test_filter_validation(stack: Stack, subtests: pytest.Subtests) -> None:
    meter = create_meter(stack)
    for filters, expected in FILTER_INVALID:
        with subtests.test(msg=str(filters)):
            resp = stack.request(
                "POST", "/features", feature_body(meter={"id": meter["id"], "filters": filters})
            )
            assert params(resp) == expected
            contract.validate(resp, "create-feature")
    # Every contract operator is fine on a meter dimension, `exists` included.
    filters = {
        "provider": {"exists": True},
        "model": {"in": ["gpt-4", "gpt-4o"]},
        "type": {"and": [{"neq": "cache_read"}, {"ncontains": "reason"}]},
    }
    body = create(stack, meter={"id": meter["id"], "filters": filters})
    assert body["meter"]["filters"] == filters


# -- unit cost -----------------------------------------------------------------------------------
UNIT_COST_INVALID: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({}, [("unit_cost.type", "required")]),
    ({"type": "flat", "amount": "1"}, [("unit_cost.type", "enum")]),
    ({"type": "manual"}, [("unit_cost.amount", "required")]),
    ({"type": "manual", "amount": 0.5}, [("unit_cost.amount", "is_string")]),
    ({"type": "manual", "amount": "abc"}, [("unit_cost.amount", "matches_regex")]),
    ({"type": "manual", "amount": "1."}, [("unit_cost.amount", "matches_regex")]),
    ({"type": "manual", "amount": ".5"}, [("unit_cost.amount", "matches_regex")]),
    ({"type": "manual", "amount": "1e-3"}, [("unit_cost.amount", "matches_regex")]),
    ({"type": "manual", "amount": "1", "currency": "USD"}, [("unit_cost.currency", "unknown_property")]),
    ({"type": "manual", "amount": "1", "model": "gpt-4"}, [("unit_cost.model", "unknown_property")]),
    (
        {"type": "llm", "provider": "openai", "model": "gpt-4", "token_type": "prompt"},
        [("unit_cost.token_type", "enum")],
    ),
    (
        {"type": "llm", "provider": "", "model": "gpt-4", "token_type": "input"},
        [("unit_cost.provider", "min_length")],
    ),
    (
        {
            "type": "llm",
            "provider": "openai",
            "provider_property": "provider",
            "model": "m",
            "token_type": "input",
        },
        [("unit_cost.provider", "invalid"), ("unit_cost.provider_property", "invalid")],
    ),
    (
        {
            "type": "llm",
            "provider": "openai",
            "model": "m",
            "token_type": "input",
            "token_type_property": "type",
        },
        [("unit_cost.token_type", "invalid"), ("unit_cost.token_type_property", "invalid")],
    ),
    (
        {"type": "llm", "provider": "openai", "token_type": "input"},
        [("unit_cost.model", "required"), ("unit_cost.model_property", "required")],
    ),
    (
        {"type": "llm", "provider": "openai", "model": "m", "token_type": "input", "pricing": {}},
        [("unit_cost.pricing", "unknown_property")],
    ),
    ({**LLM_DYNAMIC, "model_property": "model_id"}, [("unit_cost.model_property", "invalid")]),
]


def test_unit_cost_validation(stack: Stack, subtests: pytest.Subtests) -> None:
    meter = create_meter(stack)
    for unit_cost, expected in UNIT_COST_INVALID:
        with subtests.test(msg=str(unit_cost)[:90]):
            body = feature_body(meter={"id": meter["id"]}, unit_cost=unit_cost)
            resp = stack.request("POST", "/features", body)
            assert params(resp) == expected
            contract.validate(resp, "create-feature")
    assert keys(stack.request("GET", "/features")) == []


def test_bad_token_type_lists_the_choices(stack: Stack) -> None:
    cost = {"type": "llm", "provider": "openai", "model": "gpt-4", "token_type": "prompt"}
    [param] = problem(stack.request("POST", "/features", feature_body(unit_cost=cost)), 400)[
        "invalid_parameters"
    ]
    assert param["choices"] == [t.value for t in TokenType]


def test_manual_amounts_round_trip(stack: Stack) -> None:
    for i, amount in enumerate(("0.005", "0.0050", "1", "-2.5", "12345678901234567890.000000000001")):
        body = create(stack, f"f{i}", unit_cost={"type": "manual", "amount": amount})
        assert body["unit_cost"] == {"type": "manual", "amount": amount}
        assert get(stack, body["id"])["unit_cost"]["amount"] == amount


def test_llm_static_cost_needs_no_meter(stack: Stack) -> None:
    cost = {"type": "llm", "provider": "openai", "model": "gpt-4o", "token_type": "request"}
    body = create(stack, unit_cost=cost)
    assert body["unit_cost"] == cost  # no fake `pricing`: the cost database comes later
    feature = bootstrap.features().get(body["id"])
    assert feature.unit_cost == LlmUnitCost(provider="openai", model="gpt-4o", token_type=TokenType.REQUEST)
    assert feature.unit_cost.token_type.canonical is TokenType.INPUT


def test_llm_dynamic_cost_names_meter_dimensions(stack: Stack) -> None:
    meter = create_meter(stack)
    body = create(stack, meter={"id": meter["id"]}, unit_cost=LLM_DYNAMIC)
    assert body["unit_cost"] == LLM_DYNAMIC
    mixed = {"type": "llm", "provider": "anthropic", "model_property": "model", "token_type": "response"}
    assert create(stack, "mixed", meter={"id": meter["id"]}, unit_cost=mixed)["unit_cost"] == mixed


def test_llm_property_without_meter_is_400(stack: Stack) -> None:
    resp = stack.request("POST", "/features", feature_body(unit_cost=LLM_DYNAMIC))
    assert params(resp) == [("unit_cost.provider_property", "invalid")]
    contract.validate(resp, "create-feature")


# -- get -----------------------------------------------------------------------------------------
def test_get_unknown_is_404(stack: Stack) -> None:
    for ref in (UNKNOWN_ULID, "nope", "Not%20A%20Key"):
        get(stack, ref, 404)
        problem(stack.request("GET", f"/features/{ref}"), 404)


# -- conflicts -----------------------------------------------------------------------------------
def test_duplicate_key_is_409(stack: Stack) -> None:
    first = create(stack)
    body = conflict(stack.request("POST", "/features", feature_body(name="Other")), "create-feature")
    assert body["detail"] == "A feature with key [gpt_4_tokens] already exists"
    assert body["conflicting_entity_id"] == first["id"]
    assert keys(stack.request("GET", "/features")) == ["gpt_4_tokens"]


def test_meter_deleted_while_creating_is_400(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    meter = create_meter(stack)
    service = bootstrap.features()
    stale = service.meters.get(meter["id"])
    assert stack.request("DELETE", f"/meters/{meter['id']}").status == 204
    calls = iter([stale])
    real = service.meters.get
    # The check read the meter just before the delete landed; the transaction still refuses.
    monkeypatch.setattr(service.meters, "get", lambda ref: next(calls, None) or real(ref))
    resp = stack.request("POST", "/features", feature_body(meter={"id": meter["id"]}))
    assert params(resp) == [("meter.id", "invalid")]
    assert keys(stack.request("GET", "/features")) == []
    create(stack)  # the key was not claimed


# -- update (PATCH) ------------------------------------------------------------------------------
def patch(stack: Stack, ref: str, body: Any, status: int = 200) -> dict[str, Any]:
    resp = stack.request("PATCH", f"/features/{ref}", body)
    assert resp.status == status, resp
    return contract.validate(resp, "update-feature")


def test_patch_sets_changes_keeps_and_clears_unit_cost(stack: Stack) -> None:
    meter = create_meter(stack)
    created = create(stack, meter={"id": meter["id"], "filters": {"model": {"eq": "gpt-4"}}})
    manual = patch(stack, created["id"], {"unit_cost": {"type": "manual", "amount": "0.10"}})
    assert manual["unit_cost"] == {"type": "manual", "amount": "0.10"}
    assert manual["updated_at"] >= created["updated_at"]
    assert {k: v for k, v in manual.items() if k not in ("unit_cost", "updated_at")} == {
        k: v for k, v in created.items() if k != "updated_at"
    }
    llm = patch(stack, "gpt_4_tokens", {"unit_cost": LLM_DYNAMIC})
    assert llm["unit_cost"] == LLM_DYNAMIC
    assert patch(stack, created["id"], {}) == llm  # omitted: kept
    cleared = patch(stack, created["id"], {"unit_cost": None})
    assert "unit_cost" not in cleared
    assert get(stack, created["id"]) == cleared


PATCH_INVALID: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"name": "Renamed"}, [("name", "unknown_property")]),
    ({"key": "other"}, [("key", "unknown_property")]),
    ({"meter": {"id": UNKNOWN_ULID}}, [("meter", "unknown_property")]),
    ({"description": "x"}, [("description", "unknown_property")]),
    ({"unit_cost": []}, [("unit_cost", "is_object")]),
    ({"unit_cost": {"type": "manual", "amount": "x"}}, [("unit_cost.amount", "matches_regex")]),
    (
        {"unit_cost": {**LLM_DYNAMIC, "token_type_property": "kind"}},
        [("unit_cost.token_type_property", "invalid")],
    ),
]


def test_patch_validation(stack: Stack, subtests: pytest.Subtests) -> None:
    meter = create_meter(stack)
    created = create(stack, meter={"id": meter["id"]}, unit_cost={"type": "manual", "amount": "1"})
    for body, expected in PATCH_INVALID:
        with subtests.test(msg=str(body)[:80]):
            resp = stack.request("PATCH", f"/features/{created['id']}", body)
            assert params(resp) == expected
            contract.validate(resp, "update-feature")
    resp = stack.request("PATCH", f"/features/{created['id']}", b"nope")
    assert params(resp)[0][0] == "body"
    assert get(stack, created["id"]) == created
    static = create(stack, "static")
    resp = stack.request("PATCH", f"/features/{static['id']}", {"unit_cost": LLM_DYNAMIC})
    assert params(resp) == [("unit_cost.provider_property", "invalid")]


def test_patch_unknown_or_archived_is_404(stack: Stack) -> None:
    patch(stack, UNKNOWN_ULID, {"unit_cost": None}, 404)
    created = create(stack)
    assert stack.request("DELETE", f"/features/{created['id']}").status == 204
    body = patch(stack, created["id"], {"unit_cost": {"type": "manual", "amount": "1"}}, 404)
    assert body["detail"] == f"Feature [{created['id']}] is archived"
    assert "unit_cost" not in get(stack, created["id"])


def test_patch_racing_an_archive_does_not_resurrect(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    created = create(stack)
    service = bootstrap.features()
    stale = service.get(created["id"])
    assert stack.request("DELETE", f"/features/{created['id']}").status == 204
    monkeypatch.setattr(service, "get", lambda _ref: dataclasses.replace(stale))
    patch(stack, created["id"], {"unit_cost": {"type": "manual", "amount": "1"}}, 404)
    monkeypatch.undo()
    archived = get(stack, created["id"])
    assert "deleted_at" in archived
    assert "unit_cost" not in archived


# -- delete (archive) ----------------------------------------------------------------------------
def test_delete_archives_and_frees_the_key(stack: Stack) -> None:
    meter = create_meter(stack)
    first = create(stack, meter={"id": meter["id"]}, unit_cost={"type": "manual", "amount": "1"})
    resp = stack.request("DELETE", f"/features/{first['id']}")
    assert resp.status == 204
    contract.validate(resp, "delete-feature")

    archived = get(stack, first["id"])
    assert archived["deleted_at"] == archived["updated_at"]
    assert {k: v for k, v in archived.items() if k not in ("deleted_at", "updated_at")} == {
        k: v for k, v in first.items() if k != "updated_at"
    }
    get(stack, "gpt_4_tokens", 404)
    assert keys(stack.request("GET", "/features")) == []

    second = create(stack)  # the key is free again, exactly once
    assert second["id"] != first["id"]
    assert get(stack, "gpt_4_tokens")["id"] == second["id"]
    again = conflict(stack.request("POST", "/features", feature_body()), "create-feature")
    assert again["conflicting_entity_id"] == second["id"]
    assert [f["id"] for f in stack.request("GET", "/features").json()["data"]] == [second["id"]]
    assert "deleted_at" in get(stack, first["id"])

    resp = stack.request("DELETE", f"/features/{first['id']}")  # archived already
    problem(resp, 404)
    contract.validate(resp, "delete-feature")


def test_delete_by_key_and_unknown(stack: Stack) -> None:
    created = create(stack)
    assert stack.request("DELETE", "/features/gpt_4_tokens").status == 204
    assert "deleted_at" in get(stack, created["id"])
    for ref in (UNKNOWN_ULID, "gpt_4_tokens"):
        resp = stack.request("DELETE", f"/features/{ref}")
        problem(resp, 404)
        contract.validate(resp, "delete-feature")


# -- list ----------------------------------------------------------------------------------------
@pytest.fixture
def five(stack: Stack) -> dict[str, Any]:
    tokens = create_meter(stack)
    calls = create_meter(
        stack, "api_calls", aggregation="count", value_property=None, dimensions={"route": "$.r"}
    )
    made = {
        "delta": create(stack, "delta", name="Delta tokens", meter={"id": tokens["id"]}),
        "alpha": create(stack, "alpha", name="Alpha calls", meter={"id": calls["id"]}),
        "echo": create(stack, "echo", name="echo"),
        "charlie": create(stack, "charlie", name="Charlie tokens", meter={"id": tokens["id"]}),
        "bravo": create(stack, "bravo", name="Bravo"),
    }
    archived = create(stack, "archived", name="Archived", meter={"id": tokens["id"]})
    assert stack.request("DELETE", f"/features/{archived['id']}").status == 204
    return {"tokens": tokens["id"], "calls": calls["id"], **made}


def test_list_defaults_to_created_at_and_pages(stack: Stack, five: dict[str, Any]) -> None:
    resp = stack.request("GET", "/features")
    assert keys(resp) == ["delta", "alpha", "echo", "charlie", "bravo"]
    assert resp.json()["meta"] == {"page": {"number": 1, "size": 100, "total": 5}}
    assert resp.json()["data"][0] == five["delta"]
    first = stack.request("GET", "/features?page[size]=2")
    assert keys(first) == ["delta", "alpha"]
    assert first.json()["meta"]["page"] == {"number": 1, "size": 2, "total": 5}
    assert keys(stack.request("GET", "/features?page[size]=2&page[number]=3")) == ["bravo"]
    assert keys(stack.request("GET", "/features?page[size]=2&page[number]=4")) == []


def test_list_filters(stack: Stack, five: dict[str, Any], subtests: pytest.Subtests) -> None:
    tokens, calls = five["tokens"], five["calls"]
    cases = [
        ("filter[key]=echo", ["echo"]),
        ("filter[key][oeq]=alpha,bravo,archived", ["alpha", "bravo"]),
        ("filter[key][neq]=delta", ["alpha", "echo", "charlie", "bravo"]),
        ("filter[name][contains]=tokens", ["delta", "charlie"]),
        ("filter[name][ocontains]=calls,bra", ["alpha", "bravo"]),
        (f"filter[meter_id]={tokens}", ["delta", "charlie"]),
        (f"filter[meter_id][eq]={calls}", ["alpha"]),
        (f"filter[meter_id][oeq]={tokens},{calls}", ["delta", "alpha", "charlie"]),
        (f"filter[meter_id][neq]={tokens}", ["alpha", "echo", "bravo"]),
        (f"filter[meter_id]={UNKNOWN_ULID}", []),
        (f"filter[meter_id]={tokens}&filter[name][contains]=charlie", ["charlie"]),
    ]
    for query, expected in cases:
        with subtests.test(msg=query):
            resp = stack.request("GET", f"/features?{query}")
            assert keys(resp) == expected
            assert resp.json()["meta"]["page"]["total"] == len(expected)


def test_list_sort(stack: Stack, five: dict[str, Any], subtests: pytest.Subtests) -> None:
    for sort, expected in [
        ("key", ["alpha", "bravo", "charlie", "delta", "echo"]),
        ("key desc", ["echo", "delta", "charlie", "bravo", "alpha"]),
        ("name", ["alpha", "bravo", "charlie", "delta", "echo"]),
        ("created_at desc", ["bravo", "charlie", "echo", "alpha", "delta"]),
    ]:
        with subtests.test(msg=sort):
            assert keys(stack.request("GET", f"/features?sort={sort}")) == expected
    patch(stack, five["alpha"]["id"], {"unit_cost": {"type": "manual", "amount": "1"}})
    assert keys(stack.request("GET", "/features?sort=updated_at desc"))[0] == "alpha"


LIST_INVALID = [
    ("sort=aggregation", "sort", "enum"),
    ("sort=key sideways", "sort", "invalid"),
    ("filter[colour]=x", "filter[colour]", "unknown_property"),
    ("filter[key][gt]=x", "filter[key][gt]", "enum"),
    ("filter[meter_id]=llm_tokens", "filter[meter_id][eq]", "matches_regex"),
    (f"filter[meter_id][oeq]={UNKNOWN_ULID},x", "filter[meter_id][oeq]", "matches_regex"),
    ("filter[meter_id][contains]=x", "filter[meter_id][contains]", "enum"),
    ("page[size]=0", "page[size]", "invalid"),
]


def test_list_bad_params(stack: Stack, subtests: pytest.Subtests) -> None:
    for query, field, rule in LIST_INVALID:
        with subtests.test(msg=query):
            resp = stack.request("GET", f"/features?{query}")
            [param] = problem(resp, 400)["invalid_parameters"]
            assert (param["field"], param["rule"], param["source"]) == (field, rule, "query")
            contract.validate(resp, "list-features")


# -- roles ---------------------------------------------------------------------------------------
def test_viewer_reads_but_cannot_write(stack: Stack) -> None:
    created = create(stack)
    resp = stack.request("GET", "/features", token=VIEWER)
    assert keys(resp) == ["gpt_4_tokens"]
    assert stack.request("GET", f"/features/{created['id']}", token=VIEWER).json() == created
    for method, path, body, operation in [
        ("POST", "/features", feature_body("other"), "create-feature"),
        ("PATCH", f"/features/{created['id']}", {"unit_cost": None}, "update-feature"),
        ("DELETE", f"/features/{created['id']}", None, "delete-feature"),
    ]:
        resp = stack.request(method, path, body, token=VIEWER)
        problem(resp, 403)
        contract.validate(resp, operation)
    problem(stack.request("GET", "/features", token=None), 401)
    assert get(stack, created["id"]) == created


# -- meters in use -------------------------------------------------------------------------------
def test_meter_with_a_live_feature_cannot_be_deleted(stack: Stack) -> None:
    meter = create_meter(stack)
    other = create_meter(stack, "other")
    feature = create(stack, meter={"id": meter["id"]})
    create(stack, "elsewhere", meter={"id": other["id"]})
    body = conflict(stack.request("DELETE", f"/meters/{meter['id']}"), "delete-meter")
    assert body["conflicting_entity_id"] == feature["id"]
    assert feature["key"] in body["detail"]
    assert stack.request("GET", f"/meters/{meter['id']}").status == 200

    assert stack.request("DELETE", f"/features/{feature['id']}").status == 204
    resp = stack.request("DELETE", "/meters/llm_tokens")
    assert resp.status == 204, resp
    contract.validate(resp, "delete-meter")
    # The archived feature still names its (now deleted) meter.
    assert get(stack, feature["id"])["meter"] == {"id": meter["id"]}


# -- the service and repository other code calls --------------------------------------------------
def test_service_and_repository_lookups(stack: Stack) -> None:
    meter = create_meter(stack)
    created = create(
        stack,
        meter={"id": meter["id"], "filters": {"model": {"eq": "gpt-4"}}},
        unit_cost={"type": "manual", "amount": "0.25"},
    )
    service = bootstrap.features()
    feature = service.get("gpt_4_tokens")
    assert feature == service.get(created["id"])
    assert feature.meter_id == meter["id"]
    assert feature.meter_filters == {"model": {"eq": "gpt-4"}}
    assert feature.unit_cost == ManualUnitCost(Decimal("0.25"))
    assert feature.archived_at is None
    assert feature_views.feature(feature) == created

    repo = FeatureRepository(get_settings().config_table)
    assert repo.get(created["id"]) == feature
    assert repo.active_by_key("gpt_4_tokens") == feature
    assert [f.id for f in repo.live_features_for_meter(meter["id"])] == [created["id"]]
    assert repo.live_features_for_meter(UNKNOWN_ULID) == []

    service.delete(created["id"])
    assert repo.active_by_key("gpt_4_tokens") is None
    assert repo.live_features_for_meter(meter["id"]) == []
    archived = repo.get(created["id"])
    assert archived is not None and archived.archived_at is not None
    assert service.get(created["id"]).archived_at == archived.archived_at
    with pytest.raises(NotFound):
        service.get("gpt_4_tokens")
