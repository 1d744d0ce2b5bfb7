"""The LLM cost operations against the contract: prices, overrides, the feature cost query."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared import bootstrap as wiring
from shared.core.timeutil import Clock
from shared.llmcost.repository import PriceRepository
from shared.llmcost.service import PriceService
from shared.settings import get_settings
from tests.contract.test_contract_routes import contract_operation, served_routes
from tests.integration import conftest as integration
from tests.support import contract, llm_catalog
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack
UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
OPERATIONS = {
    "list-llm-cost-prices",
    "get-llm-cost-price",
    "list-llm-cost-overrides",
    "create-llm-cost-override",
    "delete-llm-cost-override",
    "query-feature-cost",
}
OVERRIDE = {
    "provider": "anthropic",
    "model_id": "claude-3-5-sonnet",
    "model_name": "Claude 3.5 Sonnet (negotiated)",
    "pricing": {
        "input_per_token": "0.0000025",
        "output_per_token": "0.0000125",
        "cache_read_per_token": "0.00000025",
        "cache_write_per_token": "0.000003",
        "reasoning_per_token": "0.0000125",
    },
    "currency": "USD",
    "effective_from": "2026-01-01T00:00:00Z",
    "effective_to": "2027-01-01T00:00:00Z",
}


class _At(Clock):
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def priced(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    cat = llm_catalog.catalog()
    monkeypatch.setattr(wiring, "llm_catalog", lambda: cat)
    PriceService(PriceRepository(get_settings().config_table), cat, _At()).refresh()
    return stack


def check(resp: Any, operation_id: str, status: int) -> Any:
    assert resp.status == status, resp
    return contract.validate(resp, operation_id)


def test_every_llm_cost_operation_is_served() -> None:
    served = {op.operation_id for m, p in served_routes() if (op := contract_operation(m, p))}
    assert served >= OPERATIONS, sorted(OPERATIONS - served)


def test_prices(priced: Stack) -> None:
    page = check(priced.request("GET", "/llm-cost/prices"), "list-llm-cost-prices", 200)
    assert [p["model"]["id"] for p in page["data"]] == ["claude-3-5-sonnet", "gpt-4o"]  # sorted by model.id
    assert page["meta"]["page"] == {"number": 1, "size": 100, "total": 2}
    gpt = page["data"][1]
    assert gpt["pricing"] == {
        "input_per_token": "0.0000025",
        "output_per_token": "0.00001",
        "cache_read_per_token": "0.00000125",
    }
    assert (gpt["source"], gpt["currency"], gpt["provider"]) == (
        "system",
        "USD",
        {"id": "openai", "name": "OpenAI"},
    )
    one = check(priced.request("GET", f"/llm-cost/prices/{gpt['id']}"), "get-llm-cost-price", 200)
    assert one == gpt
    filtered = priced.request("GET", "/llm-cost/prices?filter[provider][eq]=anthropic&page[size]=1")
    assert [p["model"]["id"] for p in check(filtered, "list-llm-cost-prices", 200)["data"]] == [
        "claude-3-5-sonnet"
    ]
    by_name = priced.request(
        "GET", "/llm-cost/prices?filter[model_name][contains]=gpt&sort=effective_from desc"
    )
    assert len(check(by_name, "list-llm-cost-prices", 200)["data"]) == 1
    check(priced.request("GET", f"/llm-cost/prices/{UNKNOWN}"), "get-llm-cost-price", 404)
    check(priced.request("GET", f"/llm-cost/prices/{UNKNOWN}", token=INGESTER), "get-llm-cost-price", 403)
    check(priced.request("GET", "/llm-cost/prices", token=None), "list-llm-cost-prices", 401)
    viewer = priced.request("GET", "/llm-cost/prices", token=VIEWER)
    check(viewer, "list-llm-cost-prices", 200)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("filter[vendor][eq]=x", "filter[vendor]"),
        ("filter[provider][like]=x", "filter[provider][like]"),
        ("page[size]=0", "page[size]"),
        ("sort=price", "sort"),
        ("limit=3", "limit"),
    ],
)
def test_price_list_bad_params(priced: Stack, query: str, field: str) -> None:
    body = check(priced.request("GET", f"/llm-cost/prices?{query}"), "list-llm-cost-prices", 400)
    assert body["invalid_parameters"][0]["field"] == field


def test_overrides(priced: Stack) -> None:
    created = check(priced.request("POST", "/llm-cost/overrides", OVERRIDE), "create-llm-cost-override", 201)
    assert created["source"] == "manual" and created["effective_to"] == "2027-01-01T00:00:00Z"
    assert created["pricing"] == OVERRIDE["pricing"]
    assert created["model"] == {"id": "claude-3-5-sonnet", "name": "Claude 3.5 Sonnet (negotiated)"}
    listed = check(priced.request("GET", "/llm-cost/overrides"), "list-llm-cost-overrides", 200)
    assert [o["id"] for o in listed["data"]] == [created["id"]]
    manual = priced.request("GET", "/llm-cost/prices?filter[source][eq]=manual")
    assert [p["id"] for p in check(manual, "list-llm-cost-prices", 200)["data"]] == [created["id"]]
    check(
        priced.request("POST", "/llm-cost/overrides", OVERRIDE, token=VIEWER), "create-llm-cost-override", 403
    )
    check(priced.request("DELETE", f"/llm-cost/overrides/{created['id']}"), "delete-llm-cost-override", 204)
    check(priced.request("DELETE", f"/llm-cost/overrides/{created['id']}"), "delete-llm-cost-override", 404)
    system_id = check(priced.request("GET", "/llm-cost/prices"), "list-llm-cost-prices", 200)["data"][0]["id"]
    # A system price is no override: it can't be deleted.
    check(priced.request("DELETE", f"/llm-cost/overrides/{system_id}"), "delete-llm-cost-override", 404)
    check(priced.request("GET", "/llm-cost/overrides?sort=id"), "list-llm-cost-overrides", 400)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pricing": {"input_per_token": "0.1"}}, "pricing.output_per_token"),
        ({"pricing": {"input_per_token": "-1", "output_per_token": "1"}}, "pricing.input_per_token"),
        ({"pricing": {"input_per_token": "1e-6", "output_per_token": "1"}}, "pricing.input_per_token"),
        ({"currency": "usd"}, "currency"),
        ({"effective_from": "2026-01-01T00:00:30Z"}, "effective_from"),
        ({"effective_to": "2025-01-01T00:00:00Z"}, "effective_to"),
        ({"model_id": ""}, "model_id"),
        ({"source": "manual"}, "source"),
    ],
)
def test_override_validation(priced: Stack, change: dict[str, Any], field: str) -> None:
    body = check(
        priced.request("POST", "/llm-cost/overrides", {**OVERRIDE, **change}), "create-llm-cost-override", 400
    )
    assert body["invalid_parameters"][0]["field"] == field
    assert check(priced.request("GET", "/llm-cost/overrides"), "list-llm-cost-overrides", 200)["data"] == []


def test_feature_cost_query(priced: Stack) -> None:
    meter = priced.request(
        "POST",
        "/meters",
        {
            "key": "tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "llm",
            "value_property": "$.tokens",
            "dimensions": {"model": "$.model"},
        },
    ).json()
    feature = priced.request(
        "POST",
        "/features",
        {
            "key": "gpt_in",
            "name": "GPT input",
            "meter": {"id": meter["id"]},
            "unit_cost": {
                "type": "llm",
                "provider": "openai",
                "model_property": "model",
                "token_type": "input",
            },
        },
    ).json()
    events = [
        {
            "id": f"c{i}",
            "source": "t",
            "type": "llm",
            "subject": "acme",
            "time": t,
            "data": {"tokens": 1000, "model": m},
        }
        for i, (t, m) in enumerate([("2026-01-10T01:00:00Z", "gpt-4o"), ("2026-01-10T02:00:00Z", "mystery")])
    ]
    assert priced.ingest(events).status == 202
    priced.drain()
    body = {
        "from": "2026-01-10T00:00:00Z",
        "to": "2026-01-11T00:00:00Z",
        "granularity": "PT1H",
        "group_by_dimensions": ["model", "subject"],
    }
    path = f"/features/{feature['id']}/cost/query"
    result = check(priced.request("POST", path, body), "query-feature-cost", 200)
    # 1,000 x 0.0000025 = 0.0025; the unknown model has no cost
    assert [(r["from"], r["cost"]) for r in result["data"]] == [
        ("2026-01-10T01:00:00Z", "0.0025"),
        ("2026-01-10T02:00:00Z", None),
    ]
    assert "detail" in result["data"][1]
    check(priced.request("POST", path, token=VIEWER), "query-feature-cost", 200)  # no body: all time
    check(priced.request("POST", path, {"granularity": "P1W"}), "query-feature-cost", 400)
    check(priced.request("POST", f"/features/{UNKNOWN}/cost/query", body), "query-feature-cost", 404)
    check(priced.request("POST", path, body, token=None), "query-feature-cost", 401)
    check(priced.request("POST", path, body, token=INGESTER), "query-feature-cost", 403)
