"""The usage function the balance engine burns against, backed by the usage counters.

usage_fn(a, b) is the feature's meter aggregate over [a, b) for every subject attributed to the
entitlement's customer, with the feature's meter filters applied. Calls are cached per refresh:
the engine asks for the same cumulative ranges at each phase boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shared.customers.attribution import Attribution
from shared.entitlements.engine import UsageKind
from shared.entitlements.models import GAUGE_AGGREGATIONS, Entitlement
from shared.meters.models import Meter
from shared.meters.repository import MeterRepository
from shared.usage.query import ParsedQuery, UsageQueryService

UsageFn = Callable[[datetime, datetime], Decimal]
UTC_ZONE = ZoneInfo("UTC")


class FeatureLookup(Protocol):
    def get(self, feature_id: str) -> Any: ...


class MeterlessFeature(Exception):
    """A metered entitlement whose feature (or meter) is gone: usage can't be measured."""


class EntitlementUsage:
    def __init__(
        self,
        query: UsageQueryService,
        attribution: Attribution,
        meters: MeterRepository,
        features: FeatureLookup,
    ) -> None:
        self.query = query
        self.attribution = attribution
        self.meters = meters
        self.features = features
        self._meters: dict[str, Meter] = {}
        self._filters: dict[str, dict[str, dict[str, Any]]] = {}

    def meter_of(self, ent: Entitlement) -> Meter:
        # A meter's aggregation and a feature's meter never change: cached for the process.
        meter_id = ent.meter_id
        if meter_id is None:
            feature = self.features.get(ent.feature_id)
            meter_id = feature.meter_id if feature else None
        meter = self._meters.get(meter_id) if meter_id else None
        if meter is None and meter_id:
            meter = self.meters.get(meter_id)
            if meter is not None:
                self._meters[meter_id] = meter
        if meter is None:
            raise MeterlessFeature(f"entitlement {ent.id}: feature {ent.feature_key} has no meter")
        return meter

    def filters_of(self, ent: Entitlement) -> dict[str, dict[str, Any]]:
        """The feature's meter filters (immutable, so cached for the process)."""
        if ent.feature_id not in self._filters:
            feature = self.features.get(ent.feature_id)
            self._filters[ent.feature_id] = dict(getattr(feature, "meter_filters", None) or {})
        return self._filters[ent.feature_id]

    def usage_fn(self, ent: Entitlement) -> tuple[UsageFn, UsageKind]:
        meter = self.meter_of(ent)
        filters = self.filters_of(ent)
        subjects = self.attribution.subjects_of([ent.customer_id]).get(ent.customer_id, [])
        kind = UsageKind.GAUGE if meter.aggregation in GAUGE_AGGREGATIONS else UsageKind.ADDITIVE
        cache: dict[tuple[datetime, datetime], Decimal] = {}

        def usage(a: datetime, b: datetime) -> Decimal:
            if a >= b or not subjects:
                return Decimal(0)
            if (a, b) not in cache:
                q = ParsedQuery(
                    start=a,
                    end=b,
                    granularity=None,
                    tz=UTC_ZONE,
                    group_by=[],
                    filters=filters,
                    subjects=subjects,
                )
                rows = self.query.run(meter, q).rows
                cache[(a, b)] = Decimal(rows[0]["value"]) if rows else Decimal(0)
            return cache[(a, b)]

        return usage, kind
