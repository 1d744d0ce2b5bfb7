"""Domain types of LLM cost: token prices, effective-dated price versions, cost rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

USD = "USD"
# A catalog price with no start date has been in effect "since the catalog began": the epoch.
SINCE_EVER = datetime(1970, 1, 1, tzinfo=UTC)
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning")


class Source(StrEnum):
    SYSTEM = "system"  # synced from the price catalog
    MANUAL = "manual"  # an override entered through the API


@dataclass(frozen=True)
class TokenPrices:
    """USD (or the override's currency) per token; the optional ones are None when not priced."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def normalized(self) -> tuple[Decimal | None, ...]:
        """For comparing versions: 2.50 and 2.5 are the same price."""
        return tuple(None if v is None else v.normalize() for v in (getattr(self, f) for f in TOKEN_FIELDS))


@dataclass(frozen=True)
class ModelKey:
    """A catalog model: provider id and model id as the catalog spells them (lower case)."""

    provider: str
    model: str


@dataclass(frozen=True)
class PriceVersion:
    """One price of one model over [effective_from, effective_to); `effective_to` None = still current."""

    id: str
    provider_id: str
    provider_name: str
    model_id: str
    model_name: str
    pricing: TokenPrices
    currency: str
    source: Source
    effective_from: datetime
    created_at: datetime
    updated_at: datetime
    effective_to: datetime | None = None

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.provider_id, self.model_id)

    def covers(self, t: datetime) -> bool:
        return self.effective_from <= t and (self.effective_to is None or t < self.effective_to)


@dataclass(frozen=True)
class CatalogModel:
    """A model as the catalog describes it: its price timeline, oldest first, without end dates."""

    provider_id: str
    provider_name: str
    model_id: str
    model_name: str
    timeline: tuple[tuple[datetime, TokenPrices], ...]

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.provider_id, self.model_id)


@dataclass(frozen=True)
class CostRow:
    usage: Decimal
    cost: Decimal | None
    currency: str
    start: datetime
    end: datetime
    dimensions: dict[str, str]
    detail: str | None = None


@dataclass(frozen=True)
class CostResult:
    start: datetime | None
    end: datetime | None
    rows: list[CostRow]
    group_by: list[str]
    # For the CSV's customer columns: customer id -> (key, name).
    customers: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    items_read: int = 0
    queries: int = 0


@dataclass(frozen=True)
class RefreshReport:
    models: int
    added: int
    closed: int
