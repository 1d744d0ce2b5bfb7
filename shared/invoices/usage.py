"""`UsageMeter` on the usage counters: a feature's meter with its filters, over every subject of the
customer, for one period (what the entitlements measure, `shared/entitlements/usage.py`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.core.errors import NotFound
from shared.customers.attribution import Attribution
from shared.features.repository import FeatureRepository
from shared.meters.models import Meter
from shared.meters.repository import MeterRepository
from shared.rating.models import Period
from shared.usage.query import ParsedQuery, UsageQueryService

UTC_ZONE = ZoneInfo("UTC")


class MeteredUsage:
    def __init__(
        self,
        query: UsageQueryService,
        attribution: Attribution,
        meters: MeterRepository,
        features: FeatureRepository,
    ) -> None:
        self.query = query
        self.attribution = attribution
        self.meters = meters
        self.features = features
        # A feature's meter and filters never change and a meter's aggregation neither: per process.
        self._by_key: dict[str, tuple[Meter, dict[str, Any]]] = {}

    def _meter(self, feature_key: str) -> tuple[Meter, dict[str, Any]]:
        if feature_key not in self._by_key:
            feature = self.features.active_by_key(feature_key)
            if feature is None:
                raise NotFound(f"Feature [{feature_key}] not found")
            meter = self.meters.get(feature.meter_id) if feature.meter_id else None
            if meter is None:
                raise NotFound(f"Feature [{feature_key}] has no meter")
            self._by_key[feature_key] = (meter, dict(feature.meter_filters or {}))
        return self._by_key[feature_key]

    def quantity(self, customer_id: str, feature_key: str, period: Period) -> Decimal:
        meter, filters = self._meter(feature_key)
        subjects = self.attribution.subjects_of([customer_id]).get(customer_id, [])
        if not subjects or period.start >= period.end:
            return Decimal(0)
        q = ParsedQuery(
            start=period.start,
            end=period.end,
            granularity=None,
            tz=UTC_ZONE,
            group_by=[],
            filters=filters,
            subjects=subjects,
        )
        rows = self.query.run(meter, q).rows
        return Decimal(rows[0]["value"]) if rows else Decimal(0)
