"""A small price catalog for tests, built from genai-prices' own types (so its matching rules run).

Prices per million tokens, as the catalog keeps them:
- openai gpt-4o (matches `gpt-4o`, `gpt-4o-2024-*`): input 2.50, output 10, cache read 1.25
- anthropic claude-3-5-sonnet (matches names starting so): input 3, output 15, cache read 0.30,
  cache write 3.75
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from genai_prices import types as gp

from shared.llmcost.catalog import Catalog


def gpt_4o(input_mtok: str = "2.5", since: date | None = None) -> gp.ModelInfo:
    prices = gp.ModelPrice(
        input_mtok=Decimal(input_mtok), output_mtok=Decimal(10), cache_read_mtok=Decimal("1.25")
    )
    if since is not None:
        # The catalog's way of recording a price change: the old price, then the new one from a date.
        old = gp.ModelPrice(
            input_mtok=Decimal("2.5"), output_mtok=Decimal(10), cache_read_mtok=Decimal("1.25")
        )
        prices = [
            gp.ConditionalPrice(prices=old),
            gp.ConditionalPrice(gp.StartDateConstraint(since), prices=prices),
        ]
    return gp.ModelInfo(
        id="gpt-4o",
        name="GPT-4o",
        match=gp.ClauseOr(
            or_=[gp.ClauseEquals(equals="gpt-4o"), gp.ClauseStartsWith(starts_with="gpt-4o-2024")]
        ),
        prices=prices,
    )


def claude() -> gp.ModelInfo:
    return gp.ModelInfo(
        id="claude-3-5-sonnet",
        name="Claude 3.5 Sonnet",
        match=gp.ClauseStartsWith(starts_with="claude-3-5-sonnet"),
        prices=gp.ModelPrice(
            input_mtok=Decimal(3),
            output_mtok=Decimal(15),
            cache_read_mtok=Decimal("0.3"),
            cache_write_mtok=Decimal("3.75"),
        ),
    )


def catalog(gpt: gp.ModelInfo | None = None, version: str = "test-1") -> Catalog:
    providers = [
        gp.Provider(
            id="openai",
            name="OpenAI",
            api_pattern=r"https://api\.openai\.com",
            provider_match=gp.ClauseContains(contains="openai"),
            models=[gpt or gpt_4o()],
        ),
        gp.Provider(
            id="anthropic",
            name="Anthropic",
            api_pattern=r"https://api\.anthropic\.com",
            provider_match=gp.ClauseContains(contains="anthropic"),
            models=[claude()],
        ),
    ]
    return Catalog(providers, version=version)
