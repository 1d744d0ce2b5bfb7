"""`UsageMeter` on the usage counters: a feature's meter with its filters, over every subject of the
customer, for one period (what the entitlements measure, `shared/entitlements/usage.py`).

An invoice's lines are measured in one call: the customer's subjects are read once, and the
features and meters not seen yet in this process in three batched reads (a feature's meter and
filters never change, nor a meter's aggregation; an archived feature's key is looked up again)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.aws.dynamo import batch_get, from_item, to_item
from shared.core.errors import DomainError, NotFound
from shared.customers.attribution import Attribution
from shared.features.repository import FeatureRepository, feature_from_record, feature_item_key, key_claim_key
from shared.meters.models import Meter
from shared.meters.repository import MeterRepository, meter_from_record
from shared.rating.models import Period
from shared.usage.query import ParsedQuery, UsageQueryService
from shared.usage.subjects import indexed_pairs

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
        self._by_key: dict[str, tuple[Meter, dict[str, Any]]] = {}

    def _load(self, feature_keys: set[str]) -> None:
        missing = sorted(k for k in feature_keys if k not in self._by_key)
        if not missing:
            return
        client, table = self.features.client, self.features.table
        claims = [from_item(i) for i in batch_get(client, table, [key_claim_key(k) for k in missing])]
        ids = [str(c["id"]) for c in claims]
        features = [
            feature_from_record(from_item(i))
            for i in batch_get(client, table, [feature_item_key(i) for i in ids])
        ]
        meter_ids = sorted({f.meter_id for f in features if f.meter_id and f.archived_at is None})
        meter_keys = [to_item({"pk": f"METER#{m}", "sk": "METER"}) for m in meter_ids]
        meters = {
            m.id: m for m in (meter_from_record(from_item(i)) for i in batch_get(client, table, meter_keys))
        }
        for f in features:
            if f.archived_at is None and f.meter_id in meters:
                self._by_key[f.key] = (meters[f.meter_id], dict(f.meter_filters or {}))

    def _metered(self, meters: list[Meter], subjects: list[str]) -> set[tuple[str, str]]:
        """The (meter, subject) pairs that may have usage, from the subject index (its event type's
        items and the previous release's per-meter ones, shared/usage/subjects.py), in one
        consistent read. A customer's subjects include its key and id (attribution), which usually
        carry no events: a query per meter and subject would mostly read empty partitions. Sound
        because the aggregate writes a subject's index item before any of its counters and never
        deletes one; a pair listed without usage on this meter only costs a query that finds
        nothing."""
        client, table = self.query.client, self.query.table
        return indexed_pairs(client, table, meters, subjects, consistent=True)

    def quantities(self, customer_id: str, asks: Sequence[tuple[str, Period]]) -> list[Decimal | DomainError]:
        self._load({key for key, _ in asks})
        subjects: list[str] | None = None
        metered: set[tuple[str, str]] = set()
        out: list[Decimal | DomainError] = []
        for feature_key, period in asks:
            found = self._by_key.get(feature_key)
            if found is None:
                out.append(NotFound(f"Feature [{feature_key}] not found or has no meter"))
                continue
            if subjects is None:
                subjects = self.attribution.subjects_of([customer_id]).get(customer_id, [])
                meters = {got[0].id: got[0] for k, _ in asks if (got := self._by_key.get(k)) is not None}
                metered = self._metered(list(meters.values()), subjects) if subjects else set()
            meter, filters = found
            with_usage = [s for s in subjects if (meter.id, s) in metered]
            if not with_usage or period.start >= period.end:
                out.append(Decimal(0))
                continue
            q = ParsedQuery(
                start=period.start,
                end=period.end,
                granularity=None,
                tz=UTC_ZONE,
                group_by=[],
                filters=filters,
                subjects=with_usage,
            )
            rows = self.query.run(meter, q).rows
            out.append(Decimal(rows[0]["value"]) if rows else Decimal(0))
        return out
