"""Use cases of LLM cost: the price list, overrides, the catalog refresh and feature cost queries.

Typed inputs in (requests.py), domain objects out (models.py), domain errors raised; no HTTP here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.core.errors import InvalidInput, NotFound, Unavailable
from shared.core.ids import is_ulid, new_id
from shared.core.listing import sort_items
from shared.core.timeutil import Clock, floor_minute, format_rfc3339, parse_rfc3339
from shared.features.models import Feature, LlmUnitCost, ManualUnitCost, TokenType, UnitCost
from shared.features.service import FeatureService
from shared.llmcost import pricing
from shared.llmcost.catalog import Catalog
from shared.llmcost.models import (
    USD,
    CostResult,
    CostRow,
    ModelKey,
    PriceVersion,
    RefreshReport,
    Source,
)
from shared.llmcost.repository import Conflict, PriceRepository, system_version_id
from shared.llmcost.requests import OverrideInput, PriceListInput
from shared.meters.models import Aggregation, Meter
from shared.meters.service import MeterService
from shared.usage.query import ParsedQuery, UsageQueryService
from shared.usage.windows import windows

REFRESH_EVERY = timedelta(days=1)
_SORT_KEYS: dict[str, Callable[[PriceVersion], Any]] = {
    "id": lambda v: v.id,
    "provider.id": lambda v: v.provider_id,
    "model.id": lambda v: (v.model_id, v.provider_id, v.effective_from),
    "effective_from": lambda v: v.effective_from,
    # Open-ended (current) prices sort last.
    "effective_to": lambda v: (v.effective_to is None, v.effective_to or v.effective_from),
}


def _field(v: PriceVersion, name: str) -> str:
    return {
        "provider": v.provider_id,
        "model_id": v.model_id,
        "model_name": v.model_name,
        "currency": v.currency,
        "source": v.source.value,
    }[name]


class PriceService:
    def __init__(self, repo: PriceRepository, catalog: Catalog, clock: Clock | None = None) -> None:
        self.repo = repo
        self.catalog = catalog
        self.clock = clock or Clock()

    # -- reads -----------------------------------------------------------------------------------
    def list_prices(self, q: PriceListInput) -> tuple[list[PriceVersion], int]:
        """System versions and overrides, filtered, sorted (model.id by default), one page."""
        provider_eq = next((f.value for f in q.filters if f.field == "provider" and f.op == "eq"), None)
        items = self.repo.system_versions(self.catalog.provider_id(provider_eq) if provider_eq else None)
        items += self.repo.overrides()
        return self._page(items, q, default_sort="model.id")

    def list_overrides(self, q: PriceListInput) -> tuple[list[PriceVersion], int]:
        return self._page(self.repo.overrides(), q, default_sort="model.id")

    @staticmethod
    def _page(
        items: list[PriceVersion], q: PriceListInput, default_sort: str
    ) -> tuple[list[PriceVersion], int]:
        items = [v for v in items if all(f.matches(_field(v, f.field)) for f in q.filters)]
        items = sort_items(items, q.sort, _SORT_KEYS, default_sort)
        return q.page.slice(items), len(items)

    def get(self, price_id: str) -> PriceVersion:
        found = self.repo.get(price_id) if is_ulid(price_id) else None
        if found is None:
            raise NotFound(f"LLM cost price [{price_id}] not found")
        return found

    # -- overrides -------------------------------------------------------------------------------
    def upsert_override(self, req: OverrideInput) -> PriceVersion:
        """Create the override of (provider, model, currency), or update the existing one in place."""
        provider = self.catalog.provider_id(req.provider)
        known = self.catalog.resolve(req.provider, req.model_id)
        # The catalog's id when it knows the model (`gpt-4o-2024-08-06` -> `gpt-4o`): the override then
        # applies to every name the catalog matches to that model.
        model = known.model if known else req.model_id.lower()
        names = self._names(known)
        now = self.clock.now()
        for _ in range(3):  # a create racing another create or a delete settles within a retry
            existing_id = self.repo.override_id(provider, model, req.currency)
            existing = self.repo.get(existing_id) if existing_id else None
            version = PriceVersion(
                id=existing.id if existing else new_id(),
                provider_id=provider,
                provider_name=names[0] or (existing.provider_name if existing else req.provider),
                model_id=model,
                model_name=req.model_name or names[1] or req.model_id,
                pricing=req.pricing,
                currency=req.currency,
                source=Source.MANUAL,
                effective_from=req.effective_from,
                effective_to=req.effective_to,
                created_at=existing.created_at if existing else now,
                updated_at=now,
            )
            try:
                if existing:
                    self.repo.replace_override(version)
                else:
                    self.repo.create_override(version)
                return version
            except Conflict:
                continue
        raise Unavailable("The override changed concurrently; retry the request")

    def _names(self, key: ModelKey | None) -> tuple[str | None, str | None]:
        if key is None:
            return None, None
        for m in self.catalog.models():
            if m.key == key:
                return m.provider_name, m.model_name
        return None, None

    def delete_override(self, price_id: str) -> None:
        found = self.repo.get(price_id) if is_ulid(price_id) else None
        if found is None or found.source != Source.MANUAL:
            raise NotFound(f"LLM cost override [{price_id}] not found")
        try:
            self.repo.delete_override(found)
        except Conflict:
            raise NotFound(f"LLM cost override [{price_id}] not found") from None

    # -- the catalog refresh ---------------------------------------------------------------------
    def refresh_due(self) -> bool:
        """Daily, and at once after a deploy that brings another catalog version (or an empty table)."""
        marker = self.repo.catalog_marker()
        if marker is None:
            return True
        version, at = marker
        return version != self.catalog.version or self.clock.now() - at >= REFRESH_EVERY

    def refresh(self) -> RefreshReport:
        """Append the catalog's price changes to the stored versions (pricing.plan_refresh's rules)."""
        now = floor_minute(self.clock.now())
        stored: dict[ModelKey, list[PriceVersion]] = {}
        for v in self.repo.system_versions():
            stored.setdefault(v.key, []).append(v)
        first_load: list[PriceVersion] = []
        added = closed = 0
        models = self.catalog.models()
        for model in models:
            plan = pricing.plan_refresh(stored.get(model.key, []), model.timeline, now)
            versions = [
                PriceVersion(
                    id=system_version_id(model.provider_id, model.model_id, n.effective_from),
                    provider_id=model.provider_id,
                    provider_name=model.provider_name,
                    model_id=model.model_id,
                    model_name=model.model_name,
                    pricing=n.pricing,
                    currency=USD,
                    source=Source.SYSTEM,
                    effective_from=n.effective_from,
                    effective_to=n.effective_to,
                    created_at=now,
                    updated_at=now,
                )
                for n in plan.new
            ]
            if not versions:
                continue
            if plan.close is None:
                first_load += versions
                added += len(versions)
                continue
            try:
                self.repo.append(plan.close, versions[0].effective_from, versions)
                added += len(versions)
                closed += 1
            except Conflict:
                pass  # another refresh closed it first: its versions are the same (deterministic ids)
        self.repo.load(first_load)
        self.repo.mark_refreshed(self.catalog.version, now)
        return RefreshReport(models=len(models), added=added, closed=closed)


# -- cost queries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Priced:
    """A fine row's price lookup: its model key (None when unresolved) and why it has no cost."""

    key: ModelKey | None
    raw: ModelKey | None
    token_type: TokenType | None
    problem: str | None


@dataclass(frozen=True)
class CostTarget:
    feature: Feature
    meter: Meter
    unit_cost: UnitCost  # the feature's, checked present


class CostService:
    def __init__(
        self,
        features: FeatureService,
        meters: MeterService,
        usage: UsageQueryService,
        prices: PriceRepository,
        catalog: Catalog,
    ) -> None:
        self.features = features
        self.meters = meters
        self.usage = usage
        self.prices = prices
        self.catalog = catalog

    def target(self, feature_id: str) -> CostTarget:
        """The feature to cost and its meter (the query is parsed against the meter's dimensions);
        InvalidInput unless the feature has a unit cost and an additive meter."""
        feature = self.features.get(feature_id)
        if feature.unit_cost is None:
            raise InvalidInput.field(
                "feature", f"feature [{feature.key}] has no unit_cost to compute a cost with"
            )
        if feature.meter_id is None:
            raise InvalidInput.field(
                "feature", f"feature [{feature.key}] has no meter: it has no usage to cost"
            )
        meter = self.meters.get(feature.meter_id)
        if meter.aggregation not in (Aggregation.SUM, Aggregation.COUNT):
            raise InvalidInput.field(
                "feature",
                f"the meter of feature [{feature.key}] aggregates with {meter.aggregation.value}; "
                "a cost needs an additive meter (sum or count)",
            )
        return CostTarget(feature, meter, feature.unit_cost)

    def query(self, target: CostTarget, q: ParsedQuery) -> CostResult:
        feature, meter = target.feature, target.meter
        filters = dict(q.filters)
        for name, spec in feature.meter_filters.items():
            filters[name] = {"and": [filters[name], spec]} if name in filters else spec
        user_group = list(q.group_by)
        unit = target.unit_cost
        needed = list(unit.properties.values()) if isinstance(unit, LlmUnitCost) else []
        q = replace(q, filters=filters, group_by=user_group + [d for d in needed if d not in user_group])
        first = self.usage.run(meter, q)
        customers = {cid: (ref.key, ref.name) for cid, ref in first.customers.items()}
        if isinstance(unit, ManualUnitCost) or not first.rows:
            rows = [self._manual_row(r, unit) for r in first.rows] if isinstance(unit, ManualUnitCost) else []
            return CostResult(
                first.start, first.end, rows, user_group, customers, first.items_read, first.queries
            )
        return self._llm(meter, q, first, unit, user_group, customers)

    @staticmethod
    def _manual_row(row: dict[str, Any], unit: ManualUnitCost) -> CostRow:
        usage = Decimal(row["value"])
        return CostRow(
            usage, pricing.cost(usage, unit.amount), USD, _t(row["from"]), _t(row["to"]), row["dimensions"]
        )

    def _llm(
        self,
        meter: Any,
        q: ParsedQuery,
        first: Any,
        unit: LlmUnitCost,
        user_group: list[str],
        customers: dict[str, tuple[str | None, str]],
    ) -> CostResult:
        start, end = first.start, first.end
        lookups: dict[tuple[str, ...], _Priced] = {}
        for row in first.rows:
            dims = row["dimensions"]
            lookups.setdefault(self._lookup_key(unit, dims), self._lookup(unit, dims))
        keys = {p.key for p in lookups.values() if p.key is not None}
        system = {k: self.prices.model_versions(k) for k in keys}
        overrides: dict[ModelKey, list[PriceVersion]] = {}
        for o in self.prices.overrides():
            if o.currency == USD:  # cost is reported in the unit cost's currency, USD
                overrides.setdefault(o.key, []).append(o)
        relevant = [v for k in keys for v in system[k]] + [o for os_ in overrides.values() for o in os_]
        cuts = pricing.boundaries(relevant, start, end)
        runs: list[tuple[datetime, list[dict[str, Any]]]] = [(start, first.rows)]
        items, queries = first.items_read, first.queries
        if cuts:
            # Only the windows a price boundary falls inside are read again, piece by piece; the
            # first read prices every other window (one price holds across each of them).
            spans = (
                [(start, end)] if q.granularity is None else list(windows(start, end, q.granularity, q.tz))
            )
            split: dict[datetime, tuple[datetime, datetime]] = {}  # window start -> its part in range
            for ws, we in spans:
                a, b = max(ws, start), min(we, end)
                if pricing.boundaries(relevant, a, b):
                    split[ws] = (a, b)
            kept = [r for r in first.rows if _t(r["from"]) not in split]
            runs = [(start, kept)]
            for a, b in split.values():
                for pa, pb in pricing.pieces(a, b, pricing.boundaries(relevant, a, b)):
                    part = self.usage.run(meter, replace(q, start=pa, end=pb))
                    items, queries = items + part.items_read, queries + part.queries
                    runs.append((pa, part.rows))
        # (window from, window to, user dims) -> [usage, cost or None, details]
        totals: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Any]] = {}
        for a, rows in runs:
            for row in rows:
                dims = row["dimensions"]
                priced = lookups.get(self._lookup_key(unit, dims)) or self._lookup(unit, dims)
                usage = Decimal(row["value"])
                window = (
                    (row["from"], row["to"])
                    if q.granularity
                    else (format_rfc3339(start), format_rfc3339(end))
                )
                at = max(_t(row["from"]), a)
                amount, detail = self._price(priced, system, overrides, at, usage)
                key = (*window, tuple((n, dims.get(n, "")) for n in user_group))
                acc = totals.setdefault(key, [Decimal(0), Decimal(0), []])
                acc[0] = pricing.add(acc[0], usage)
                if amount is None:
                    acc[1] = None
                    if detail not in acc[2]:
                        acc[2].append(detail)
                elif acc[1] is not None:
                    acc[1] = pricing.add(acc[1], amount)
        out = [
            CostRow(u, c, USD, _t(f), _t(t), dict(d), "; ".join(det) if c is None else None)
            for (f, t, d), (u, c, det) in sorted(totals.items())
        ]
        return CostResult(start, end, out, user_group, customers, items, queries)

    @staticmethod
    def _lookup_key(unit: LlmUnitCost, dims: dict[str, str]) -> tuple[str, ...]:
        return tuple(dims.get(p, "") for p in unit.properties.values())

    def _lookup(self, unit: LlmUnitCost, dims: dict[str, str]) -> _Priced:
        values = {}
        for name in ("provider", "model", "token_type"):
            static = getattr(unit, name)
            prop = getattr(unit, f"{name}_property")
            value = static.value if isinstance(static, TokenType) else static
            if value is None:
                value = dims.get(prop or "", "")
                if not value:
                    return _Priced(
                        None, None, None, f"the usage has no {name} (meter dimension [{prop}] is empty)"
                    )
            values[name] = value
        try:
            token_type = TokenType(values["token_type"])
        except ValueError:
            choices = ", ".join(t.value for t in TokenType)
            return _Priced(None, None, None, f"unknown token type [{values['token_type']}]; one of {choices}")
        provider, model = values["provider"], values["model"]
        key = self.catalog.resolve(provider, model)
        raw = ModelKey(self.catalog.provider_id(provider), model.strip().lower())
        problem = (
            None
            if key
            else f"no price for model [{model}] of provider [{provider}]: not in the price catalog"
        )
        return _Priced(key, raw, token_type, problem)

    @staticmethod
    def _price(
        priced: _Priced,
        system: dict[ModelKey, list[PriceVersion]],
        overrides: dict[ModelKey, list[PriceVersion]],
        at: datetime,
        usage: Decimal,
    ) -> tuple[Decimal | None, str]:
        if priced.token_type is None:
            return None, priced.problem or "no price"
        ovr = [o for k in (priced.key, priced.raw) if k is not None for o in overrides.get(k, [])]
        version = pricing.effective(system.get(priced.key, []) if priced.key else [], ovr, at)
        if version is None:
            if priced.problem:
                return None, priced.problem
            name = f"{priced.key.provider}/{priced.key.model}" if priced.key else "an unknown model"
            return None, f"no price for [{name}] effective at {format_rfc3339(at)}"
        per_unit = pricing.unit_price(version.pricing, priced.token_type)
        if per_unit is None:
            return None, f"[{version.provider_id}/{version.model_id}] has no {priced.token_type.value} price"
        return pricing.cost(usage, per_unit), ""


def _t(value: str) -> datetime:
    return parse_rfc3339(value)
