"""Stored entitlements and grants in the balance engine's terms."""

from __future__ import annotations

from collections.abc import Iterable

from shared.entitlements import engine
from shared.entitlements.models import Entitlement, GrantRecord


def to_terms(ent: Entitlement, kind: engine.UsageKind = engine.UsageKind.ADDITIVE) -> engine.Terms:
    if ent.measure_usage_from is None or ent.usage_period_interval is None:
        raise ValueError(f"entitlement {ent.id} is not metered")
    return engine.Terms(
        kind=kind,
        interval=ent.usage_period_interval,
        anchor=ent.usage_period_anchor or ent.measure_usage_from,
        measure_usage_from=ent.measure_usage_from,
        preserve_overage_at_reset=ent.preserve_overage_at_reset,
        is_soft_limit=ent.is_soft_limit,
        resets=tuple(
            engine.ManualReset(at=r.at, preserve_overage=r.preserve_overage, retain_anchor=r.retain_anchor)
            for r in ent.resets
        ),
    )


def to_engine_grants(records: Iterable[GrantRecord]) -> list[engine.Grant]:
    return [
        engine.Grant(
            id=g.id,
            amount=g.amount,
            priority=g.priority,
            effective_at=g.effective_at,
            created_at=g.created_at,
            expires_at=g.expires_at,
            voided_at=g.voided_at,
            min_rollover=g.min_rollover_amount,
            max_rollover=g.max_rollover_amount,
            recurrence=engine.Recurrence(g.recurrence_interval, g.recurrence_anchor or g.effective_at)
            if g.recurrence_interval
            else None,
        )
        for g in records
    ]
