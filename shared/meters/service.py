"""Meter CRUD rules: immutable key/aggregation/event type/value, 409 on a taken key, soft delete.

Typed inputs in (requests.py), `Meter`s out, domain errors raised. Which features use a meter is
asked through a port (`MeterUsers`): features depend on meters, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.core.errors import Conflict, NotFound
from shared.core.ids import is_ulid, new_id
from shared.core.listing import Listed, sort_items
from shared.core.timeutil import Clock
from shared.meters.models import Meter
from shared.meters.repository import DuplicateKey, MeterGone, MeterRepository
from shared.meters.requests import CreateMeterRequest, ListMetersQuery, UpdateMeterRequest

SORTS = {
    "key": lambda m: m.key,
    "name": lambda m: m.name,
    "aggregation": lambda m: m.aggregation.value,
    "created_at": lambda m: (m.created_at, m.id),
    "updated_at": lambda m: (m.updated_at, m.id),
}


class Named(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def key(self) -> str: ...


class MeterUsers(Protocol):
    """What is built on meters (features): a meter in use can't be deleted."""

    def live_features_for_meter(self, meter_id: str) -> Sequence[Named]: ...


class MeterService:
    def __init__(self, repo: MeterRepository, users: MeterUsers, clock: Clock | None = None) -> None:
        self.repo = repo
        self.users = users
        self.clock = clock or Clock()

    def create(self, req: CreateMeterRequest) -> Meter:
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

    def list(self, query: ListMetersQuery) -> Listed[Meter]:
        filters = query.filters
        meters = [m for m in self.repo.list_all() if all(f.matches(getattr(m, f.field)) for f in filters)]
        return Listed.of(query.page, sort_items(meters, query.sort, SORTS, "created_at"))

    def update(self, id_or_key: str, req: UpdateMeterRequest) -> Meter:
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
        live = self.users.live_features_for_meter(meter.id)
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
