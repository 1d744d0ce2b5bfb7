"""LLM cost over the API: the price database, overrides and `POST /features/{id}/cost/query`.

Every expected number is worked by hand from tests/support/llm_catalog.py's prices (per token):
gpt-4o input 0.0000025, output 0.00001, cache read 0.00000125;
claude-3-5-sonnet input 0.000003, output 0.000015, cache read 0.0000003, cache write 0.00000375.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import bootstrap as wiring
from shared.core.timeutil import Clock
from shared.llmcost.catalog import Catalog
from shared.llmcost.repository import PriceRepository
from shared.llmcost.service import PriceService
from shared.settings import get_settings
from tests.support import contract, llm_catalog
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_ids = itertools.count()
DAY = {"from": "2026-01-10T00:00:00Z", "to": "2026-01-11T00:00:00Z"}


class FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def refresh(cat: Catalog, now: datetime) -> Any:
    return PriceService(PriceRepository(get_settings().config_table), cat, FixedClock(now)).refresh()


@pytest.fixture
def prices(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    cat = llm_catalog.catalog()
    monkeypatch.setattr(wiring, "llm_catalog", lambda: cat)
    refresh(cat, datetime(2026, 1, 1, tzinfo=UTC))
    return cat


def ev(
    time: str, tokens: int, provider: str, model: str, type_: str, subject: str = "acme"
) -> dict[str, Any]:
    return {
        "id": f"llm{next(_ids)}",
        "source": "test",
        "type": "llm",
        "subject": subject,
        "time": time,
        "data": {"tokens": tokens, "provider": provider, "model": model, "type": type_},
    }


def load(stack: Stack, events: list[dict[str, Any]]) -> None:
    assert stack.ingest(events).status == 202
    assert stack.drain() == len(events)


def token_feature(stack: Stack, **unit_cost: Any) -> str:
    meter = stack.request(
        "POST",
        "/meters",
        {
            "key": "tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "llm",
            "value_property": "$.tokens",
            "dimensions": {"provider": "$.provider", "model": "$.model", "type": "$.type"},
        },
    )
    assert meter.status == 201, meter
    cost = unit_cost or {
        "provider_property": "provider",
        "model_property": "model",
        "token_type_property": "type",
    }
    resp = stack.request(
        "POST",
        "/features",
        {
            "key": "llm_tokens",
            "name": "LLM tokens",
            "meter": {"id": meter.json()["id"]},
            "unit_cost": {"type": "llm", **cost},
        },
    )
    assert resp.status == 201, resp
    return resp.json()["id"]


def cost_query(stack: Stack, feature_id: str, body: dict[str, Any], status: int = 200) -> Any:
    resp = stack.request("POST", f"/features/{feature_id}/cost/query", body)
    assert resp.status == status, resp
    return contract.validate(resp, "query-feature-cost")


def by_dims(result: Any) -> dict[tuple[str, ...], tuple[str, str | None]]:
    return {tuple(r["dimensions"].values()): (r["usage"], r["cost"]) for r in result["data"]}


USAGE = [
    ev("2026-01-10T06:00:00Z", 600_000, "openai", "gpt-4o-2024-08-06", "input"),
    ev("2026-01-10T18:00:00Z", 400_000, "openai", "gpt-4o-2024-08-06", "input"),
    ev("2026-01-10T07:00:00Z", 200_000, "openai", "gpt-4o", "output"),
    ev("2026-01-10T08:00:00Z", 400_000, "openai", "gpt-4o", "cache_read"),
    ev("2026-01-10T09:00:00Z", 123_457, "anthropic", "claude-3-5-sonnet-20241022", "input"),
    ev("2026-01-10T09:30:00Z", 30_000, "anthropic", "claude-3-5-sonnet-20241022", "output"),
    ev("2026-01-10T10:00:00Z", 50_000, "anthropic", "claude-3-5-sonnet-20241022", "cache_read"),
]


def test_cost_per_model_and_token_type(stack: Stack, prices: Catalog) -> None:
    feature = token_feature(stack)
    load(stack, USAGE)
    result = cost_query(stack, feature, {**DAY, "group_by_dimensions": ["model", "type"]})
    assert by_dims(result) == {
        ("gpt-4o-2024-08-06", "input"): ("1000000", "2.5"),  # 1,000,000 x 0.0000025
        ("gpt-4o", "output"): ("200000", "2"),  # 200,000 x 0.00001
        ("gpt-4o", "cache_read"): ("400000", "0.5"),  # 400,000 x 0.00000125
        ("claude-3-5-sonnet-20241022", "input"): ("123457", "0.370371"),  # 123,457 x 0.000003
        ("claude-3-5-sonnet-20241022", "output"): ("30000", "0.45"),  # 30,000 x 0.000015
        ("claude-3-5-sonnet-20241022", "cache_read"): ("50000", "0.015"),  # 50,000 x 0.0000003
    }
    assert {r["currency"] for r in result["data"]} == {"USD"}
    assert all("detail" not in r for r in result["data"])
    # Without the pricing dimensions in the group-by, rows are priced per model and type, then summed:
    # usage 1,000,000 + 200,000 + 400,000 + 123,457 + 30,000 + 50,000 = 1,803,457;
    # cost 2.5 + 2 + 0.5 + 0.370371 + 0.45 + 0.015 = 5.835371
    total = cost_query(stack, feature, DAY)["data"]
    assert [(r["usage"], r["cost"], r["dimensions"]) for r in total] == [("1803457", "5.835371", {})]


def test_override_mid_window_splits_the_cost_at_its_start(stack: Stack, prices: Catalog) -> None:
    feature = token_feature(stack)
    load(stack, USAGE)
    override = {
        "provider": "openai",
        "model_id": "gpt-4o-2024-08-06",  # the catalog's gpt-4o: applies to every name matching it
        "pricing": {"input_per_token": "0.000002", "output_per_token": "0.00001"},
        "currency": "USD",
        "effective_from": "2026-01-10T12:00:00Z",
    }
    created = stack.request("POST", "/llm-cost/overrides", override)
    assert created.status == 201, created
    assert created.json()["model"]["id"] == "gpt-4o"
    assert created.json()["source"] == "manual"
    result = cost_query(
        stack, feature, {**DAY, "group_by_dimensions": ["model", "type"], "granularity": "P1D"}
    )
    rows = by_dims(result)
    # input: 600,000 before noon x 0.0000025 = 1.5, plus 400,000 after x 0.000002 = 0.8 -> 2.3
    assert rows[("gpt-4o-2024-08-06", "input")] == ("1000000", "2.3")
    # output (07:00) and cache read (08:00) fall before the override: system prices
    assert rows[("gpt-4o", "output")] == ("200000", "2")
    assert rows[("gpt-4o", "cache_read")] == ("400000", "0.5")
    # Creating again updates the same override; deleting it reverts to the system price.
    again = stack.request(
        "POST", "/llm-cost/overrides", {**override, "effective_from": "2026-01-10T00:00:00Z"}
    )
    assert again.status == 201 and again.json()["id"] == created.json()["id"]
    assert by_dims(cost_query(stack, feature, {**DAY, "group_by_dimensions": ["model", "type"]}))[
        ("gpt-4o-2024-08-06", "input")
    ] == ("1000000", "2")  # 1,000,000 x 0.000002
    assert stack.request("DELETE", f"/llm-cost/overrides/{created.json()['id']}").status == 204
    assert by_dims(cost_query(stack, feature, {**DAY, "group_by_dimensions": ["model", "type"]}))[
        ("gpt-4o-2024-08-06", "input")
    ] == ("1000000", "2.5")


def test_unknown_model_has_no_cost_and_says_why(stack: Stack, prices: Catalog) -> None:
    feature = token_feature(stack)
    load(stack, [*USAGE[:1], ev("2026-01-10T06:00:00Z", 5_000, "openai", "llama-9000", "input")])
    result = cost_query(stack, feature, {**DAY, "group_by_dimensions": ["model"]})
    rows = {r["dimensions"]["model"]: r for r in result["data"]}
    assert rows["gpt-4o-2024-08-06"]["cost"] == "1.5"  # 600,000 x 0.0000025
    unknown = rows["llama-9000"]
    assert unknown["cost"] is None and unknown["usage"] == "5000"
    assert "llama-9000" in unknown["detail"] and "not in the price catalog" in unknown["detail"]
    # A token type the model has no price for: gpt-4o has no cache write price.
    load(stack, [ev("2026-01-10T06:00:00Z", 10, "openai", "gpt-4o", "cache_write")])
    rows = by_dims(cost_query(stack, feature, {**DAY, "group_by_dimensions": ["model", "type"]}))
    assert rows[("gpt-4o", "cache_write")] == ("10", None)


def test_static_dimensions_and_feature_filters(stack: Stack, prices: Catalog) -> None:
    feature = token_feature(
        stack, provider="anthropic", model="claude-3-5-sonnet", token_type_property="type"
    )
    load(stack, USAGE[4:6])
    # 123,457 x 0.000003 + 30,000 x 0.000015 = 0.370371 + 0.45 = 0.820371
    assert [r["cost"] for r in cost_query(stack, feature, DAY)["data"]] == ["0.820371"]


def test_manual_unit_cost(stack: Stack, prices: Catalog) -> None:
    meter = stack.request(
        "POST", "/meters", {"key": "runs", "name": "Runs", "aggregation": "count", "event_type": "run"}
    ).json()
    feature = stack.request(
        "POST",
        "/features",
        {
            "key": "runs",
            "name": "Agent runs",
            "meter": {"id": meter["id"]},
            "unit_cost": {"type": "manual", "amount": "0.005"},
        },
    ).json()
    runs = [
        {"id": f"r{i}", "source": "t", "type": "run", "subject": "acme", "time": "2026-01-10T01:00:00Z"}
        for i in range(3)
    ]
    load(stack, runs)
    result = cost_query(stack, feature["id"], {**DAY, "group_by_dimensions": ["subject"]})
    # 3 runs x $0.005 = $0.015
    assert [(r["usage"], r["cost"], r["currency"], r["dimensions"]) for r in result["data"]] == [
        ("3", "0.015", "USD", {"subject": "acme"})
    ]


def test_refresh_adds_a_version_without_touching_past_costs(
    stack: Stack, prices: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    feature = token_feature(stack)
    load(stack, [USAGE[0], ev("2026-02-10T06:00:00Z", 600_000, "openai", "gpt-4o", "input")])
    jan = {**DAY, "group_by_dimensions": ["model"]}
    assert by_dims(cost_query(stack, feature, jan))[("gpt-4o-2024-08-06",)] == ("600000", "1.5")
    # The catalog moves gpt-4o's input to $2.00 per million (no start date: a plain price change) and
    # a refresh on 1 February appends it. Nothing was added before: history stays.
    moved = llm_catalog.catalog(llm_catalog.gpt_4o("2"), version="test-2")
    report = refresh(moved, datetime(2026, 2, 1, tzinfo=UTC))
    assert (report.added, report.closed) == (1, 1)
    assert refresh(moved, datetime(2026, 2, 1, 0, 5, tzinfo=UTC)).added == 0  # idempotent
    monkeypatch.setattr(wiring, "llm_catalog", lambda: moved)
    # The January window costs what it cost: 600,000 x 0.0000025 = 1.5
    assert by_dims(cost_query(stack, feature, jan))[("gpt-4o-2024-08-06",)] == ("600000", "1.5")
    # February usage takes the new price: 600,000 x 0.000002 = 1.2
    feb = {"from": "2026-02-10T00:00:00Z", "to": "2026-02-11T00:00:00Z", "group_by_dimensions": ["model"]}
    assert by_dims(cost_query(stack, feature, feb))[("gpt-4o",)] == ("600000", "1.2")
    listed = stack.request("GET", "/llm-cost/prices?filter[model_id][eq]=gpt-4o&sort=effective_from").json()[
        "data"
    ]
    assert [
        (p["effective_from"], p.get("effective_to"), p["pricing"]["input_per_token"]) for p in listed
    ] == [
        ("1970-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "0.0000025"),
        ("2026-02-01T00:00:00Z", None, "0.000002"),
    ]
    # A back-dated catalog change (from 5 January) also applies from the refresh on only.
    back = llm_catalog.catalog(llm_catalog.gpt_4o("1", since=datetime(2026, 1, 5).date()), version="test-3")
    refresh(back, datetime(2026, 3, 1, tzinfo=UTC))
    assert by_dims(cost_query(stack, feature, jan))[("gpt-4o-2024-08-06",)] == ("600000", "1.5")


def test_cost_query_csv(stack: Stack, prices: Catalog) -> None:
    feature = token_feature(stack)
    load(stack, [USAGE[0], ev("2026-01-10T06:00:00Z", 5, "openai", "llama-9000", "input")])
    resp = stack.request(
        "POST",
        f"/features/{feature}/cost/query",
        {**DAY, "group_by_dimensions": ["subject", "model"]},
        headers={"Accept": "text/csv"},
    )
    assert resp.status == 200 and resp.headers["content-type"] == "text/csv"
    lines = list(csv.reader(io.StringIO(resp.text)))
    assert lines[0] == ["from", "to", "subject", "model", "usage", "cost", "currency", "detail"]
    assert lines[1] == [
        "2026-01-10T00:00:00Z",
        "2026-01-11T00:00:00Z",
        "acme",
        "gpt-4o-2024-08-06",
        "600000",
        "1.5",
        "USD",
        "",
    ]
    assert lines[2][3:6] == ["llama-9000", "5", ""] and "not in the price catalog" in lines[2][7]


def test_cost_query_errors(stack: Stack, prices: Catalog) -> None:
    feature = token_feature(stack)
    bad = cost_query(stack, feature, {**DAY, "group_by_dimensions": ["nope"]}, 400)
    assert bad["invalid_parameters"][0]["field"] == "group_by_dimensions[0]"
    plain = stack.request("POST", "/features", {"key": "sso", "name": "SSO"}).json()
    assert "unit_cost" in cost_query(stack, plain["id"], DAY, 400)["detail"]
    cost_query(stack, "01ARZ3NDEKTSV4RRFFQ69G5FAV", DAY, 404)


def test_the_rate_schedule_refreshes_when_due(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.rate import handler as rate_handler

    cat = llm_catalog.catalog()
    monkeypatch.setattr(wiring, "llm_catalog", lambda: cat)
    # An empty price table (a fresh deploy): the first run loads the catalog (2 models, 1 version each).
    assert rate_handler.lambda_handler({}, None)["llm_prices"] == {"models": 2, "added": 2, "closed": 0}
    assert rate_handler.lambda_handler({}, None)["llm_prices"] is None  # refreshed less than a day ago
    # A deploy bringing another catalog version refreshes at once.
    moved = llm_catalog.catalog(llm_catalog.gpt_4o("2"), version="test-2")
    monkeypatch.setattr(wiring, "llm_catalog", lambda: moved)
    assert rate_handler.lambda_handler({}, None)["llm_prices"] == {"models": 2, "added": 1, "closed": 1}
