"""The LLM cost math (shared/llmcost/pricing.py) and the catalog adapter, every number worked by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from genai_prices import types as gp

from shared.features.models import TokenType
from shared.llmcost import pricing
from shared.llmcost.catalog import Catalog, per_token, timeline
from shared.llmcost.models import SINCE_EVER, ModelKey, PriceVersion, Source, TokenPrices
from tests.support import llm_catalog

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


GPT = TokenPrices(D("0.0000025"), D("0.00001"), cache_read=D("0.00000125"))


def version(
    prices: TokenPrices,
    start: datetime,
    end: datetime | None = None,
    source: Source = Source.SYSTEM,
    id_: str = "v",
) -> PriceVersion:
    return PriceVersion(
        id=id_,
        provider_id="openai",
        provider_name="OpenAI",
        model_id="gpt-4o",
        model_name="GPT-4o",
        pricing=prices,
        currency="USD",
        source=source,
        effective_from=start,
        effective_to=end,
        created_at=T0,
        updated_at=T0,
    )


# -- per-token prices ----------------------------------------------------------------------------
def test_per_million_becomes_per_token_exactly() -> None:
    # $2.50 / 1,000,000 = $0.0000025; $0.075 / 1,000,000 = $0.000000075 (no float anywhere).
    assert per_token(D("2.5")) == D("0.0000025")
    assert per_token(D("0.075")) == D("0.000000075")
    assert per_token(gp.TieredPrices(base=D("1.25"), tiers=[gp.Tier(200_000, D("2.5"))])) == D("0.00000125")
    assert per_token(None) is None


@pytest.mark.parametrize(
    ("token_type", "expected"),
    [
        (TokenType.INPUT, D("0.0000025")),
        (TokenType.REQUEST, D("0.0000025")),  # alias of input
        (TokenType.OUTPUT, D("0.00001")),
        (TokenType.RESPONSE, D("0.00001")),  # alias of output
        (TokenType.CACHE_READ, D("0.00000125")),
        (TokenType.CACHE_WRITE, None),  # gpt-4o has no cache write price
        (TokenType.REASONING, D("0.00001")),  # no reasoning price: billed as output
    ],
)
def test_unit_price_by_token_type(token_type: TokenType, expected: Decimal | None) -> None:
    assert pricing.unit_price(GPT, token_type) == expected


def test_reasoning_has_its_own_price_when_the_model_has_one() -> None:
    assert pricing.unit_price(TokenPrices(D(1), D(2), reasoning=D(3)), TokenType.REASONING) == D(3)


# -- cost ----------------------------------------------------------------------------------------
def test_cost_is_exact_to_the_price_precision() -> None:
    # 1,000,000 x 0.0000025 = 2.5 ; 200,000 x 0.00001 = 2 ; 123,457 x 0.000003 = 0.370371
    assert pricing.cost(D(1_000_000), D("0.0000025")) == D("2.5")
    assert pricing.cost(D(200_000), D("0.00001")) == D("2")
    assert pricing.cost(D(123_457), D("0.000003")) == D("0.370371")
    # 7 x 0.000000075 = 0.000000525: nothing is rounded away
    assert str(pricing.cost(D(7), D("0.000000075"))) == "5.25E-7"


def test_override_beats_the_system_price_in_its_window_only() -> None:
    system = [version(GPT, SINCE_EVER)]
    cheaper = TokenPrices(D("0.000002"), D("0.00001"))
    override = [version(cheaper, at(10, 12), at(20), Source.MANUAL, "o")]
    assert pricing.effective(system, override, at(10, 11)).id == "v"  # type: ignore[union-attr]
    assert pricing.effective(system, override, at(10, 12)).id == "o"  # type: ignore[union-attr]
    assert pricing.effective(system, override, at(20)).id == "v"  # type: ignore[union-attr]  (half-open)


def test_no_price_before_the_first_version() -> None:
    assert pricing.effective([version(GPT, at(5))], [], at(4)) is None


def test_boundaries_inside_the_window_split_it() -> None:
    vs = [
        version(GPT, SINCE_EVER, at(10, 12)),
        version(GPT, at(10, 12)),
        version(GPT, at(12), source=Source.MANUAL),
    ]
    cuts = pricing.boundaries(vs, at(10), at(11))
    assert cuts == [at(10, 12)]  # SINCE_EVER is outside, 12 Jan is outside
    assert pricing.pieces(at(10), at(11), cuts) == [(at(10), at(10, 12)), (at(10, 12), at(11))]
    # Split cost, worked by hand: 600,000 input at 0.0000025 before noon = 1.5,
    # 400,000 at the override's 0.000002 after = 0.8; together 2.3 (2.5 without the override).
    assert pricing.cost(D(600_000), D("0.0000025")) + pricing.cost(D(400_000), D("0.000002")) == D("2.3")


# -- refresh plans -------------------------------------------------------------------------------
TWO = TokenPrices(D("0.000002"), D("0.00001"), cache_read=D("0.00000125"))


def test_first_load_takes_the_whole_history_chained() -> None:
    plan = pricing.plan_refresh([], [(SINCE_EVER, GPT), (at(5), TWO)], at(20))
    assert plan.close is None
    assert [(n.effective_from, n.effective_to, n.pricing) for n in plan.new] == [
        (SINCE_EVER, at(5), GPT),
        (at(5), None, TWO),
    ]


def test_unchanged_price_plans_nothing() -> None:
    stored = [version(TokenPrices(D("0.0000025"), D("0.000010"), cache_read=D("0.00000125")), SINCE_EVER)]
    assert pricing.plan_refresh(stored, [(SINCE_EVER, GPT)], at(20)).new == ()


def test_a_changed_price_starts_now_and_closes_the_open_version() -> None:
    stored = [version(GPT, SINCE_EVER)]
    plan = pricing.plan_refresh(stored, [(SINCE_EVER, TWO)], at(20))
    assert plan.close == stored[0]
    assert [(n.effective_from, n.effective_to) for n in plan.new] == [(at(20), None)]


def test_a_back_dated_change_applies_from_now_never_to_the_past() -> None:
    stored = [version(GPT, SINCE_EVER)]
    plan = pricing.plan_refresh(stored, [(SINCE_EVER, GPT), (at(5), TWO)], at(20))
    assert [(n.effective_from, n.pricing) for n in plan.new] == [(at(20), TWO)]


def test_a_future_change_keeps_its_date() -> None:
    stored = [version(GPT, SINCE_EVER)]
    plan = pricing.plan_refresh(stored, [(SINCE_EVER, GPT), (at(25), TWO)], at(20))
    assert [(n.effective_from, n.pricing) for n in plan.new] == [(at(25), TWO)]


# -- the catalog adapter -------------------------------------------------------------------------
def test_timeline_follows_the_catalogs_start_dates() -> None:
    steps = timeline(llm_catalog.gpt_4o("2", since=date(2026, 1, 5)))
    assert [(s, p.input) for s, p in steps] == [(SINCE_EVER, D("0.0000025")), (at(5), D("0.000002"))]


def test_time_of_day_prices_are_left_out() -> None:
    model = gp.ModelInfo(
        id="m",
        match=gp.ClauseEquals(equals="m"),
        prices=[
            gp.ConditionalPrice(prices=gp.ModelPrice(input_mtok=D(1), output_mtok=D(2))),
            gp.ConditionalPrice(
                gp.TimeOfDateConstraint(
                    start_time=datetime(2026, 1, 1).time(), end_time=datetime(2026, 1, 1, 8).time()
                ),
                prices=gp.ModelPrice(input_mtok=D("0.5"), output_mtok=D(1)),
            ),
        ],
    )
    assert [(s, p.input) for s, p in timeline(model)] == [(SINCE_EVER, D("0.000001"))]


def test_model_names_match_the_way_users_write_them() -> None:
    cat = llm_catalog.catalog()
    gpt = ModelKey("openai", "gpt-4o")
    assert cat.resolve("openai", "gpt-4o") == gpt
    assert cat.resolve("OpenAI", "gpt-4o-2024-08-06") == gpt
    assert cat.resolve("openai", "openai/gpt-4o") == gpt
    assert cat.resolve("anthropic", "claude-3-5-sonnet-20241022") == ModelKey(
        "anthropic", "claude-3-5-sonnet"
    )
    assert cat.resolve("openai", "llama-9000") is None
    assert cat.resolve("nobody", "gpt-4o") is None


def test_the_installed_catalog_has_the_providers_users_meet() -> None:
    cat = Catalog()
    providers = {m.provider_id for m in cat.models()}
    assert {"openai", "anthropic", "google", "mistral", "cohere", "deepseek", "x-ai"} <= providers
    assert cat.resolve("openai", "gpt-4o-2024-08-06") == ModelKey("openai", "gpt-4o")
    assert cat.resolve("xai", "grok-3") == ModelKey("x-ai", "grok-3")


def test_cost_of_huge_usage_is_not_rounded() -> None:
    # (10^38 - 1) x 0.000000075 = 7.5 x 10^30 - 0.000000075: 40 significant digits, more than
    # Decimal's default 28.
    usage = D("9" * 38)
    assert pricing.cost(usage, D("0.000000075")) == D("7499999999999999999999999999999.999999925")
    assert pricing.add(D("1E+37"), D("0.000000001")) == D("10000000000000000000000000000000000000.000000001")
