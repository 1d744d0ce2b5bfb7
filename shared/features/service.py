"""Feature CRUD rules: a key unique among non-archived features, a live meter, unit cost, archive on delete.

A feature is addressed by its id (ULID) or, while not archived, its key. Its optional meter must exist
and not be deleted; its filters and its LLM unit cost's `*_property` fields must name dimensions of that
meter. Any meter aggregation is accepted here (entitlements decide what they need). Only `unit_cost`
can be updated. DELETE archives: the feature stays readable by id (with `deleted_at`), leaves the list,
and its key is free for a new feature; archived features cannot be updated or archived again (404).
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.ids import is_ulid, new_id
from shared.core.listing import Listed, sort_items
from shared.core.timeutil import Clock
from shared.features.models import Feature, LlmUnitCost, UnitCost
from shared.features.repository import FeatureGone, FeatureRepository, TransactionConflict
from shared.features.requests import CreateFeature, ListFeaturesQuery, MeterReference, UpdateFeature
from shared.meters.models import Meter
from shared.meters.repository import MeterRepository
from shared.usage.filters import validate_filter

# One dimension filter as stored JSON: 100 values of ~160 bytes fit; the feature's 10 filters stay
# far below DynamoDB's 400 KB item (unbounded values overflowed it: a 500).
MAX_FILTER_BYTES = 16 * 1024

SORTS = {
    "key": lambda f: (f.key, f.id),
    "name": lambda f: (f.name, f.id),
    "created_at": lambda f: (f.created_at, f.id),
    "updated_at": lambda f: (f.updated_at, f.id),
}


def _check_properties(unit_cost: UnitCost | None, meter: Meter | None) -> None:
    """An LLM unit cost's `*_property` fields must name dimensions of the feature's meter."""
    if not isinstance(unit_cost, LlmUnitCost):
        return
    for name, dimension in unit_cost.properties.items():
        if meter is None:
            raise InvalidInput.field(f"unit_cost.{name}", "needs a feature with a meter", "invalid")
        if dimension not in meter.dimensions:
            raise InvalidInput.field(
                f"unit_cost.{name}", f"[{dimension}] is not a dimension of meter [{meter.key}]", "invalid"
            )


class FeatureService:
    def __init__(self, repo: FeatureRepository, meters: MeterRepository, clock: Clock | None = None) -> None:
        self.repo = repo
        self.meters = meters
        self.clock = clock or Clock()

    # -- lookups ---------------------------------------------------------------------------------
    def find(self, id_or_key: str) -> Feature | None:
        """By id (archived or not), else the non-archived feature with that key."""
        if is_ulid(id_or_key):
            return self.repo.get(id_or_key)
        return self.repo.active_by_key(id_or_key)

    def get(self, id_or_key: str, include_archived: bool = True) -> Feature:
        """The feature, or NotFound. Archived features are only found by id: check `archived_at`."""
        feature = self.find(id_or_key)
        if feature is None or (feature.archived_at is not None and not include_archived):
            raise NotFound(f"Feature [{id_or_key}] not found")
        return feature

    def _unarchived(self, id_or_key: str) -> Feature:
        feature = self.get(id_or_key)
        if feature.archived_at is not None:
            raise NotFound(f"Feature [{id_or_key}] is archived")
        return feature

    def _live_meter(self, ref: MeterReference) -> Meter:
        meter = self.meters.get(ref.id)
        if meter is None or meter.deleted_at is not None:
            raise InvalidInput.field("meter.id", f"meter [{ref.id}] not found", "invalid")
        return meter

    @staticmethod
    def _filters(ref: MeterReference, meter: Meter) -> dict[str, dict[str, Any]]:
        filters: dict[str, dict[str, Any]] = {}
        for dimension, spec in (ref.filters or {}).items():
            name = f"meter.filters.{dimension}"
            if dimension not in meter.dimensions:
                raise InvalidInput.field(name, f"[{dimension}] is not a dimension of meter [{meter.key}]")
            filters[dimension] = validate_filter(spec, name)
            if len(orjson.dumps(spec)) > MAX_FILTER_BYTES:
                raise InvalidInput.field(name, f"must be at most {MAX_FILTER_BYTES} bytes as JSON")
        return filters

    # -- operations ------------------------------------------------------------------------------
    def create(self, new: CreateFeature) -> Feature:
        req, unit_cost = new.req, new.unit_cost
        meter, filters = None, {}
        if req.meter is not None:
            meter = self._live_meter(req.meter)
            filters = self._filters(req.meter, meter)
        _check_properties(unit_cost, meter)
        now = self.clock.now()
        feature = Feature(
            id=new_id(),
            key=req.key,
            name=req.name,
            description=req.description,
            labels=req.labels,
            meter_id=meter.id if meter else None,
            meter_filters=filters,
            unit_cost=unit_cost,
            created_at=now,
            updated_at=now,
        )
        try:
            self.repo.create(feature)
        except TransactionConflict:
            existing = self.repo.id_for_key(req.key)
            if existing is not None:
                raise Conflict(
                    f"A feature with key [{req.key}] already exists", conflicting_entity_id=existing
                ) from None
            if req.meter is not None:
                self._live_meter(req.meter)  # deleted while we wrote: 400 naming meter.id
            raise Conflict(f"Feature [{req.key}] was modified concurrently; retry") from None
        return feature

    def list(self, query: ListFeaturesQuery) -> Listed[Feature]:
        filters = query.filters
        features = [f for f in self.repo.list_all() if all(x.matches(getattr(f, x.field)) for x in filters)]
        return Listed.of(query.page, sort_items(features, query.sort, SORTS, "created_at"))

    def update(self, id_or_key: str, change: UpdateFeature) -> Feature:
        feature = self._unarchived(id_or_key)
        if not change.unit_cost_set:
            return feature
        unit_cost = change.unit_cost
        meter = self.meters.get(feature.meter_id) if feature.meter_id else None
        _check_properties(unit_cost, meter)
        feature.unit_cost = unit_cost
        feature.updated_at = self.clock.now()
        try:
            self.repo.update(feature)
        except FeatureGone:
            raise NotFound(f"Feature [{id_or_key}] not found") from None
        return feature

    def delete(self, id_or_key: str) -> None:
        """Archive: no new entitlements for it, existing ones stay; the key is released."""
        feature = self._unarchived(id_or_key)
        now = self.clock.now()
        feature.archived_at = now
        feature.updated_at = now
        try:
            self.repo.archive(feature)
        except FeatureGone:
            raise NotFound(f"Feature [{id_or_key}] not found") from None
