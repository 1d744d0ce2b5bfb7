"""The system price catalog: the `genai-prices` package (pydantic/genai-prices), read in-process.

The package is versioned and tracks providers, model-name matching rules and historic price changes
(conditional prices with start dates). This module turns it into effective-dated timelines of
per-token prices and resolves the model names users write to the catalog's model ids.

What the catalog has and a per-token timeline can't hold is left out, on purpose:
- prices per million tokens become per-token Decimals exactly (via str, then shifted 6 places);
- tiered prices (a higher rate past N prompt tokens in one request) keep their base rate: usage is
  aggregated per minute, the size of each request is not known;
- time-of-day prices (off-peak discounts) are skipped: the standard price applies;
- a model without an input price (image, audio, search-only models) is not loaded; a model with an
  input price but no output price (embeddings) gets an output price of 0 - it emits no output tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

import genai_prices
from genai_prices import types as gp
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

from shared.llmcost.models import SINCE_EVER, CatalogModel, ModelKey, TokenPrices

# The providers whose own models users meet; resellers and aggregators (OpenRouter, HuggingFace
# routers, ...) repeat these models under other names and are left out of the price list.
DEFAULT_PROVIDERS = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "cohere",
    "deepseek",
    "x-ai",
    "meta",
    "minimax",
    "moonshotai",
    "perplexity",
    "zai",
    "groq",
    "together",
    "fireworks",
    "aws",
    "azure",
    "voyageai",
)
_PER_MTOK = -6  # per million tokens -> per token: shift the decimal point six places


def per_token(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, gp.TieredPrices):
        value = value.base
    return Decimal(str(value)).scaleb(_PER_MTOK)


def token_prices(price: gp.ModelPrice) -> TokenPrices | None:
    """The five token prices of a catalog price; None without an input price."""
    unit_input = per_token(price.input_mtok)
    if unit_input is None:
        return None
    output = per_token(price.output_mtok)
    return TokenPrices(
        input=unit_input,
        output=output if output is not None else Decimal(0),
        cache_read=per_token(price.cache_read_mtok),
        cache_write=per_token(price.cache_write_mtok),
        reasoning=per_token(price.output_reasoning_mtok),
    )


def _start(day: date) -> datetime:
    # genai-prices compares the UTC date of the request: a start date is effective from UTC midnight.
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def timeline(model: gp.ModelInfo) -> list[tuple[datetime, TokenPrices]]:
    """The model's prices over time, oldest first, equal neighbours merged.

    Follows the catalog's own selection: of the conditional prices, the last one whose start date
    has passed applies, and before any has, the first.
    """
    if isinstance(model.prices, gp.ModelPrice):
        candidates: list[tuple[date | None, gp.ModelPrice]] = [(None, model.prices)]
    else:
        candidates = [
            (c.constraint.start_date if isinstance(c.constraint, gp.StartDateConstraint) else None, c.prices)
            for c in model.prices
            if not isinstance(c.constraint, gp.TimeOfDateConstraint)
        ]
    if not candidates:
        return []
    starts = sorted({SINCE_EVER} | {_start(d) for d, _ in candidates if d is not None})
    out: list[tuple[datetime, TokenPrices]] = []
    for at in starts:
        active = [p for d, p in candidates if d is None or d <= at.date()]
        prices = token_prices(active[-1] if active else candidates[0][1])
        if prices is None:
            continue
        if not out or out[-1][1].normalized() != prices.normalized():
            out.append((at, prices))
    return out


class Catalog:
    def __init__(
        self,
        providers: Sequence[gp.Provider] | None = None,
        provider_ids: Sequence[str] = DEFAULT_PROVIDERS,
        version: str | None = None,
    ) -> None:
        self.providers = list(providers if providers is not None else get_snapshot().providers)
        self.provider_ids = tuple(provider_ids)
        self.version = version or f"genai-prices {genai_prices.__version__}"

    @cached_property
    def _owner(self) -> dict[int, gp.Provider]:
        """Model object -> the provider that lists it (a fallback match returns another's model)."""
        return {id(m): p for p in self.providers for m in p.models}

    def models(self) -> list[CatalogModel]:
        return list(self._models)

    @cached_property
    def _models(self) -> tuple[CatalogModel, ...]:
        out = []
        for provider in self.providers:
            if provider.id not in self.provider_ids:
                continue
            for model in provider.models:
                if steps := timeline(model):
                    out.append(
                        CatalogModel(
                            provider_id=provider.id,
                            provider_name=provider.name,
                            model_id=model.id,
                            model_name=model.name or model.id,
                            timeline=tuple(steps),
                        )
                    )
        return tuple(out)

    def provider_id(self, provider: str) -> str:
        """The catalog's id of a provider as users write it (`OpenAI`, `xai`, `vertex`), else lower case."""
        found = find_provider_by_id(self.providers, provider)
        return found.id if found else provider.strip().lower()

    def resolve(self, provider: str, model_ref: str) -> ModelKey | None:
        """The catalog model a (provider, model name) pair means, by the catalog's matching rules.

        `gpt-4o-2024-08-06` and `openai/gpt-4o` both find `gpt-4o`; None when nothing matches.
        """
        found = find_provider_by_id(self.providers, provider)
        ref = model_ref.strip().lower()
        if found is None or not ref:
            return None
        head, sep, tail = ref.partition("/")
        if sep and tail and (head == found.id or find_provider_by_id(self.providers, head) is found):
            ref = tail
        model = found.find_model(ref, all_providers=self.providers)
        if model is None:
            return None
        return ModelKey(self._owner.get(id(model), found).id, model.id)
