"""Typed inputs of the LLM cost endpoints, parsed from HTTP: the only module that knows the wire names.

Bad input raises BadRequest (problem+json) naming the field: `pricing.input_per_token`,
`filter[provider][eq]`, `page[size]`, `sort`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.api.params import Page, StringFilter, nested, page_params, string_filters
from shared.api.problem import BadRequest
from shared.api.validation import Rfc3339, validate_model
from shared.llmcost.models import TokenPrices

DECIMAL = r"^\-?[0-9]+(\.[0-9]+)?$"
CURRENCY = r"^[A-Z]{3}$"
PRICE_FILTERS = ("provider", "model_id", "model_name", "currency", "source")
# Contract `list-llm-cost-prices` sort attributes (wire name -> domain attribute, in service.py).
PRICE_SORTS = ("id", "provider.id", "model.id", "effective_from", "effective_to")
# DynamoDB numbers and our Decimal context carry 38 / 28 digits: far beyond any price.
MAX_PRICE_CHARS = 40


class _Pricing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_token: str = Field(pattern=DECIMAL, max_length=MAX_PRICE_CHARS)
    output_per_token: str = Field(pattern=DECIMAL, max_length=MAX_PRICE_CHARS)
    cache_read_per_token: str | None = Field(default=None, pattern=DECIMAL, max_length=MAX_PRICE_CHARS)
    cache_write_per_token: str | None = Field(default=None, pattern=DECIMAL, max_length=MAX_PRICE_CHARS)
    reasoning_per_token: str | None = Field(default=None, pattern=DECIMAL, max_length=MAX_PRICE_CHARS)


class _OverrideCreate(BaseModel):
    """Contract `LLMCostOverrideCreate`."""

    model_config = ConfigDict(extra="forbid")
    provider: str = Field(min_length=1, max_length=128)
    model_id: str = Field(min_length=1, max_length=256)
    model_name: str | None = Field(default=None, min_length=1, max_length=256)
    pricing: _Pricing
    currency: str = Field(pattern=CURRENCY)
    effective_from: Rfc3339
    effective_to: Rfc3339 | None = None


@dataclass(frozen=True)
class OverrideInput:
    provider: str
    model_id: str
    model_name: str | None
    pricing: TokenPrices
    currency: str
    effective_from: datetime
    effective_to: datetime | None


def _whole_minute(name: str, value: datetime | None) -> None:
    # Usage is kept per minute: a price boundary inside a minute could not split it exactly.
    if value is not None and (value.second or value.microsecond):
        raise BadRequest.field(name, "must fall on a whole minute (usage is kept at minute resolution)")


def parse_override(body: Any) -> OverrideInput:
    req = validate_model(_OverrideCreate, body)
    _whole_minute("effective_from", req.effective_from)
    _whole_minute("effective_to", req.effective_to)
    if req.effective_to is not None and req.effective_to <= req.effective_from:
        raise BadRequest.field("effective_to", "must be after effective_from")
    values: dict[str, Decimal | None] = {}
    for name in ("input", "output", "cache_read", "cache_write", "reasoning"):
        raw = getattr(req.pricing, f"{name}_per_token")
        value = Decimal(raw) if raw is not None else None
        if value is not None and value < 0:
            raise BadRequest.field(f"pricing.{name}_per_token", "must not be negative")
        values[name] = value
    return OverrideInput(
        provider=req.provider.strip(),
        model_id=req.model_id.strip(),
        model_name=req.model_name,
        pricing=TokenPrices(**values),  # type: ignore[arg-type]
        currency=req.currency,
        effective_from=req.effective_from,
        effective_to=req.effective_to,
    )


@dataclass(frozen=True)
class PriceListInput:
    filters: list[StringFilter]
    page: Page
    sort: str | None = None


def parse_price_list(params: dict[str, str] | None, sortable: bool = True) -> PriceListInput:
    known = {"filter", "page"} | ({"sort"} if sortable else set())
    for name in params or {}:
        root = name.split("[", 1)[0]
        if root not in known:
            raise BadRequest.field(name, "unknown query parameter", "unknown_property", "query")
    sort = (params or {}).get("sort") if sortable else None
    if sortable and nested(params, "sort").keys() - {""}:
        raise BadRequest.field("sort", "takes a value, not brackets", "invalid", "query")
    return PriceListInput(string_filters(params, PRICE_FILTERS), page_params(params), sort)
