"""The feature and its unit cost (requests.py parses the contract's bodies, views.py renders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

# The LLM lookup dimensions: each is a static value or the name of a meter dimension, never both.
LLM_DIMENSIONS = ("provider", "model", "token_type")


class TokenType(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    CACHE_READ = "cache_read"
    CACHE_WRITE = "cache_write"
    REASONING = "reasoning"
    REQUEST = "request"  # alias of input
    RESPONSE = "response"  # alias of output

    @property
    def canonical(self) -> TokenType:
        """`request` is input and `response` is output; every other value is itself."""
        return {TokenType.REQUEST: TokenType.INPUT, TokenType.RESPONSE: TokenType.OUTPUT}.get(self, self)


@dataclass(frozen=True)
class ManualUnitCost:
    """A fixed per-unit cost in USD."""

    amount: Decimal
    type: ClassVar[str] = "manual"

    def to_api(self) -> dict[str, Any]:
        return {"type": self.type, "amount": format(self.amount, "f")}


@dataclass(frozen=True)
class LlmUnitCost:
    """Per-token cost from the LLM cost database; each dimension is static or a meter dimension's name."""

    provider: str | None = None
    provider_property: str | None = None
    model: str | None = None
    model_property: str | None = None
    token_type: TokenType | None = None
    token_type_property: str | None = None
    type: ClassVar[str] = "llm"

    @property
    def properties(self) -> dict[str, str]:
        """`<dimension>_property` field -> the meter dimension it names (set ones only)."""
        named = {f"{d}_property": getattr(self, f"{d}_property") for d in LLM_DIMENSIONS}
        return {k: v for k, v in named.items() if v is not None}

    def to_api(self) -> dict[str, Any]:
        # `pricing` is not resolved yet (the LLM cost database comes later), so it is omitted.
        body: dict[str, Any] = {"type": self.type}
        for name in ("provider", "provider_property", "model", "model_property"):
            if (value := getattr(self, name)) is not None:
                body[name] = value
        if self.token_type is not None:
            body["token_type"] = self.token_type.value
        if self.token_type_property is not None:
            body["token_type_property"] = self.token_type_property
        return body


UnitCost = ManualUnitCost | LlmUnitCost


def unit_cost_from_api(data: dict[str, Any]) -> UnitCost:
    """A stored (already validated) unit cost, in its API shape, back to the domain value."""
    if data["type"] == ManualUnitCost.type:
        return ManualUnitCost(Decimal(data["amount"]))
    token_type = data.get("token_type")
    return LlmUnitCost(
        provider=data.get("provider"),
        provider_property=data.get("provider_property"),
        model=data.get("model"),
        model_property=data.get("model_property"),
        token_type=TokenType(token_type) if token_type else None,
        token_type_property=data.get("token_type_property"),
    )


@dataclass
class Feature:
    id: str
    key: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    # No meter: a static feature (boolean/static entitlements, flat fees).
    meter_id: str | None = None
    # meter dimension -> contract QueryFilterStringMapItem (see shared.usage.filters.matches)
    meter_filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    unit_cost: UnitCost | None = None
    # DELETE archives: the contract calls it `deleted_at`. Archived features keep their id, lose their key.
    archived_at: datetime | None = None
