"""A feature's metered usage for one customer, as usage-based charges rate it (the `FeatureUsage` port).

The same measure entitlements burn against (`shared/entitlements/usage.py`): the feature's meter
aggregated over a period for every subject attributed to the customer, with the feature's meter
filters, read from the pre-aggregated counters (strongly consistent: a charge read right after an
aggregate sees its usage).

Usage is counted by the minute (the counters' finest bucket), so a period's boundaries are floored
to the minute: every minute belongs to exactly one of two adjacent periods, never both or neither.
"""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.core.timeutil import floor_minute
from shared.customers.attribution import Attribution
from shared.features.repository import FeatureRepository
from shared.meters.repository import MeterRepository
from shared.rating.models import Period
from shared.usage.query import ParsedQuery, UsageQueryService

UTC_ZONE = ZoneInfo("UTC")


class MeteredUsage:
    def __init__(
        self,
        query: UsageQueryService,
        attribution: Attribution,
        features: FeatureRepository,
        meters: MeterRepository,
    ) -> None:
        self.query = query
        self.attribution = attribution
        self.features = features
        self.meters = meters

    def resolve(self, feature_key: str) -> tuple[str, bool] | None:
        """The live feature with this key: its id, and whether it has a meter to measure usage with."""
        feature = self.features.active_by_key(feature_key)
        if feature is None:
            return None
        return feature.id, feature.meter_id is not None and self.meters.get(feature.meter_id) is not None

    def usage(self, customer_id: str, feature_id: str, period: Period) -> Decimal:
        """By the feature's id (archived or not: a charge keeps measuring the feature it was created
        with, even once its key names another). Zero with no subjects or no meter."""
        feature = self.features.get(feature_id)
        meter = self.meters.get(feature.meter_id) if feature and feature.meter_id else None
        subjects = self.attribution.subjects_of([customer_id]).get(customer_id, [])
        start, end = floor_minute(period.start), floor_minute(period.end)
        if feature is None or meter is None or not subjects or end <= start:
            return Decimal(0)
        q = ParsedQuery(
            start=start,
            end=end,
            granularity=None,
            tz=UTC_ZONE,
            group_by=[],
            filters=dict(feature.meter_filters or {}),
            subjects=subjects,
        )
        rows = self.query.run(meter, q).rows
        return Decimal(rows[0]["value"]) if rows else Decimal(0)
