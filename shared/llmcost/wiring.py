"""The LLM cost object graph from the settings (API routes, the rate function's daily refresh)."""

from __future__ import annotations

from functools import lru_cache

from shared.aws import clients
from shared.customers.attribution import Attribution
from shared.features.repository import FeatureRepository
from shared.features.service import FeatureService
from shared.llmcost.catalog import Catalog
from shared.llmcost.repository import PriceRepository
from shared.llmcost.service import CostService, PriceService
from shared.meters.repository import MeterRepository
from shared.meters.service import MeterService
from shared.settings import get_settings
from shared.usage.query import UsageQueryService


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The installed genai-prices snapshot (tests swap this function for a catalog of their own)."""
    return Catalog()


def prices() -> PriceService:
    return PriceService(PriceRepository(get_settings().config_table), catalog())


def costs() -> CostService:
    settings = get_settings()
    table = settings.config_table
    return CostService(
        FeatureService(FeatureRepository(table), MeterRepository(table)),
        MeterService(MeterRepository(table)),
        UsageQueryService(
            clients.dynamodb(), settings.usage_table, attribution=Attribution(clients.dynamodb(), table)
        ),
        PriceRepository(table),
        catalog(),
    )
