"""Meter CRUD rules: immutable key/aggregation/event type/value, 409 on a taken key, soft delete."""

from __future__ import annotations

from typing import Any

from shared.api.params import page_params, sort_items, string_filters
from shared.api.problem import Conflict, NotFound
from shared.api.validation import validate_model
from shared.core.ids import is_ulid, new_id
from shared.core.timeutil import Clock
from shared.features.repository import FeatureRepository
from shared.meters.models import CreateMeterRequest, Meter, UpdateMeterRequest
from shared.meters.repository import DuplicateKey, MeterGone, MeterRepository

SORTS = {
    "key": lambda m: m.key,
    "name": lambda m: m.name,
    "aggregation": lambda m: m.aggregation.value,
    "created_at": lambda m: (m.created_at, m.id),
    "updated_at": lambda m: (m.updated_at, m.id),
}


class MeterService:
    def __init__(self, repo: MeterRepository, clock: Clock | None = None) -> None:
        self.repo = repo
        self.clock = clock or Clock()

    def create(self, body: Any) -> Meter:
        req = validate_model(CreateMeterRequest, body)
        now = self.clock.now()
        meter = Meter(
            id=new_id(),
            key=req.key,
            name=req.name,
            description=req.description,
            labels=req.labels,
            aggregation=req.aggregation,
            event_type=req.event_type,
            events_from=req.events_from,
            value_property=req.value_property,
            dimensions=dict(req.dimensions or {}),
            created_at=now,
            updated_at=now,
        )
        try:
            self.repo.create(meter)
        except DuplicateKey:
            existing = self.repo.id_for_key(req.key)
            raise Conflict(
                f"A meter with key [{req.key}] already exists", conflicting_entity_id=existing
            ) from None
        return meter

    def get(self, id_or_key: str) -> Meter:
        meter_id = id_or_key if is_ulid(id_or_key) else self.repo.id_for_key(id_or_key)
        meter = self.repo.get(meter_id) if meter_id else None
        if meter is None or meter.deleted_at is not None:
            raise NotFound(f"Meter [{id_or_key}] not found")
        return meter

    def list(self, params: dict[str, str] | None) -> dict[str, Any]:
        page = page_params(params)
        filters = string_filters(params, ("key", "name"))
        meters = [m for m in self.repo.list_all() if all(f.matches(getattr(m, f.field)) for f in filters)]
        meters = sort_items(meters, (params or {}).get("sort"), SORTS, "created_at")
        return page.response([m.to_api() for m in page.slice(meters)], len(meters))

    def update(self, id_or_key: str, body: Any) -> Meter:
        req = validate_model(UpdateMeterRequest, body)
        meter = self.get(id_or_key)
        fields = req.model_fields_set
        if "name" in fields and req.name is not None:
            meter.name = req.name
        if "description" in fields:
            meter.description = req.description
        if "labels" in fields:
            meter.labels = req.labels
        if "dimensions" in fields:
            meter.dimensions = dict(req.dimensions or {})
        meter.updated_at = self.clock.now()
        try:
            self.repo.update(meter)
        except MeterGone:
            raise NotFound(f"Meter [{id_or_key}] not found") from None
        return meter

    def delete(self, id_or_key: str) -> None:
        """Soft delete; 409 naming a feature while any non-archived feature is based on the meter."""
        meter = self.get(id_or_key)
        live = FeatureRepository(self.repo.table, self.repo.client).live_features_for_meter(meter.id)
        if live:
            raise Conflict(
                f"Meter [{meter.key}] is used by feature [{live[0].key}] ({live[0].id}); archive it first",
                conflicting_entity_id=live[0].id,
            )
        now = self.clock.now()
        meter.deleted_at = now
        meter.updated_at = now
        try:
            self.repo.soft_delete(meter)
        except MeterGone:
            raise NotFound(f"Meter [{id_or_key}] not found") from None
