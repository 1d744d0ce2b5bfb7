"""Catalog use cases: typed inputs in, domain objects out, domain errors raised (no HTTP).

Plans and add-ons share one lifecycle (engine-rules §2.6): a create makes the key's next version as a
draft (one draft per key); only drafts change; publishing blocks on any validation error, sets
`effective_from` and archives the key's previously published version in the same transaction;
archiving sets `effective_to`; delete takes drafts and archived versions only.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Generic, TypeVar

from ulid import ULID

from shared.catalog import rules
from shared.catalog.errors import ConflictError, FieldIssue, GoneError, InvalidError, NotFoundError
from shared.catalog.models import (
    Addon,
    AppMapping,
    AppType,
    Catalog,
    DefaultTaxCodes,
    InstanceType,
    Phase,
    Plan,
    PlanAddon,
    RateCard,
    Status,
    TaxCode,
    ValidationIssue,
)
from shared.catalog.repository import (
    AddonRepository,
    PlanRepository,
    TaxCodeRepository,
    VersionedRepository,
    WriteConflict,
)
from shared.catalog.requests import AddonInput, DefaultTaxCodesInput, PlanAddonInput, PlanInput, TaxCodeInput
from shared.core.ids import new_id
from shared.core.timeutil import Clock
from shared.features.repository import FeatureRepository

T = TypeVar("T", Plan, Addon)
# A create retries when another create took the version number it read (and then left no draft).
_CREATE_ATTEMPTS = 3


def _blocked(kind: str, obj_id: str, issues: Iterable[ValidationIssue]) -> InvalidError:
    """Publishing a version with validation errors: 400 naming each field; the reason leads with the
    engine's code (the contract's `rule` is a closed enum, so the code can't go there)."""
    issues = list(issues)
    found = [FieldIssue(i.field, f"{i.code}: {i.message}") for i in issues]
    codes = ", ".join(sorted({i.code for i in issues}))
    return InvalidError(f"{kind} [{obj_id}] has validation errors and can't be published: {codes}", found)


class _Lifecycle(Generic[T]):
    """Get / publish / archive / delete, the same for plans and add-ons."""

    kind: str
    param: str  # the path parameter naming the version (planId, addonId)

    def __init__(
        self, repo: VersionedRepository[T], features: FeatureRepository, taxes: TaxCodeService, clock: Clock
    ):
        self.repo: VersionedRepository[T] = repo
        self.features = features
        self.taxes = taxes
        self.clock = clock

    def now(self) -> datetime:
        return self.clock.now()

    def catalog(self, cards: Iterable[RateCard]) -> Catalog:
        """The features and tax codes the rate cards name, as they are now."""
        cards = list(cards)
        found = Catalog()
        for rc in cards:
            if rc.feature_id is not None and rc.feature_id not in found.feature_keys:
                feature = self.features.get(rc.feature_id)
                if feature is not None and feature.archived_at is None:
                    found.feature_keys[feature.id] = feature.key
                    found.feature_meters[feature.id] = feature.meter_id
        found.tax_codes = self.taxes.live_ids({rc.tax_config.code_id for rc in cards if rc.tax_config})
        return found

    def _wrong_status(self, obj: T, action: str, allowed: str) -> InvalidError:
        status = obj.status(self.now()).value
        return InvalidError.field(
            self.param,
            f"{self.kind} [{obj.id}] is {status}: only {allowed} versions can be {action}",
            "invalid",
            "path",
        )

    def load(self, obj_id: str) -> tuple[T, int]:
        """The live version and its revision: NotFoundError if unknown, GoneError if deleted."""
        found = self.repo.get(obj_id)
        if found is None:
            raise NotFoundError(f"{self.kind.capitalize()} [{obj_id}] not found")
        if found[0].deleted_at is not None:
            raise GoneError(f"{self.kind.capitalize()} [{obj_id}] was deleted")
        return found

    def get(self, obj_id: str) -> T:
        return self.load(obj_id)[0]

    def versions(self) -> list[T]:
        """Every version not deleted, oldest first."""
        return self.repo.list_all()

    def _create(self, key: str, build: Callable[[int], T]) -> T:
        for _ in range(_CREATE_ATTEMPTS):
            draft = self.repo.draft_id(key)
            if draft is not None:
                raise ConflictError(f"A draft of {self.kind} [{key}] already exists", draft)
            obj = build(self.repo.latest_version(key) + 1)
            try:
                self.repo.create(obj)
                return obj
            except WriteConflict:
                continue  # lost to a concurrent create: it holds the draft, which the next loop reports
        raise ConflictError(f"{self.kind.capitalize()} [{key}] was modified concurrently; retry")

    def _save(self, obj: T, rev: int) -> T:
        try:
            self.repo.save(obj, rev)
        except WriteConflict:
            raise ConflictError(
                f"{self.kind.capitalize()} [{obj.id}] was modified concurrently; retry"
            ) from None
        return obj

    def _issues(self, obj: T) -> list[ValidationIssue]:
        raise NotImplementedError

    def publish(self, obj_id: str) -> T:
        obj, rev = self.load(obj_id)
        if obj.status(self.now()) is not Status.DRAFT:
            raise self._wrong_status(obj, "published", "draft")
        issues = self._issues(obj)  # again: features and add-ons may have changed since the last write
        if issues:
            raise _blocked(self.kind, obj.id, issues)
        now = self.now()
        published = replace(obj, effective_from=now, updated_at=now, validation_errors=())
        archived = [
            (replace(old, effective_to=now, updated_at=now), old_rev)
            for old, old_rev in self.repo.versions(obj.key)
            if old.id != obj.id
            and old.deleted_at is None
            and old.status(now) in (Status.ACTIVE, Status.SCHEDULED)
        ]
        try:
            self.repo.publish(published, rev, archived)
        except WriteConflict:
            raise ConflictError(
                f"{self.kind.capitalize()} [{obj_id}] was modified concurrently; retry"
            ) from None
        return published

    def archive(self, obj_id: str) -> T:
        obj, rev = self.load(obj_id)
        if obj.status(self.now()) not in (Status.ACTIVE, Status.SCHEDULED):
            raise self._wrong_status(obj, "archived", "active or scheduled")
        now = self.now()
        return self._save(replace(obj, effective_to=now, updated_at=now), rev)

    def delete(self, obj_id: str) -> None:
        found = self.repo.get(obj_id)
        if found is None or found[0].deleted_at is not None:
            raise NotFoundError(f"{self.kind.capitalize()} [{obj_id}] not found")
        obj, rev = found
        status = obj.status(self.now())
        if status not in (Status.DRAFT, Status.ARCHIVED):
            raise self._wrong_status(obj, "deleted", "draft or archived")
        now = self.now()
        try:
            self.repo.delete(replace(obj, deleted_at=now, updated_at=now), rev, status is Status.DRAFT)
        except WriteConflict:
            raise ConflictError(
                f"{self.kind.capitalize()} [{obj_id}] was modified concurrently; retry"
            ) from None


class PlanService(_Lifecycle[Plan]):
    kind = "plan"
    param = "planId"
    repo: PlanRepository

    def __init__(
        self,
        plans: PlanRepository,
        addons: AddonRepository,
        features: FeatureRepository,
        taxes: TaxCodeService,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(plans, features, taxes, clock or Clock())
        self.addons = addons

    def _validate(self, phases: tuple[Phase, ...], cadence: str) -> tuple[ValidationIssue, ...]:
        cards = [
            (f"phases[{i}].rate_cards[{j}]", rc)
            for i, p in enumerate(phases)
            for j, rc in enumerate(p.rate_cards)
        ]
        catalog = self.catalog(rc for _, rc in cards)
        rules.check_references(cards, catalog)
        return tuple(rules.plan_issues(phases, cadence, catalog))

    def _issues(self, obj: Plan) -> list[ValidationIssue]:
        issues = list(self._validate(obj.phases, obj.billing_cadence))
        phase_keys = {p.key for p in obj.phases}
        for link in self.repo.links(obj.id):
            found = self.addons.get(link.addon_id)
            addon = found[0] if found else None
            # The engine's plan_has_incompatible_addon: the add-on must be published and the phase exist.
            if addon is None or addon.deleted_at is not None or addon.status(self.now()) is not Status.ACTIVE:
                reason = "add-on is not active"
            elif link.from_plan_phase not in phase_keys:
                reason = f"phase [{link.from_plan_phase}] is not a phase of this plan"
            else:
                continue
            issues.append(
                ValidationIssue(
                    "plan_has_incompatible_addon",
                    f"plan has incompatible add-on assignment: {reason}",
                    "addons",
                    {"addon_id": link.addon_id, "plan_addon_id": link.id},
                )
            )
        return issues

    def create(self, inp: PlanInput) -> Plan:
        assert inp.key and inp.currency and inp.billing_cadence
        rules.check_plan_cadence(inp.billing_cadence)
        issues = self._validate(inp.phases, inp.billing_cadence)
        now = self.now()

        def build(version: int) -> Plan:
            return Plan(
                id=new_id(),
                key=inp.key or "",
                version=version,
                name=inp.name,
                description=inp.description,
                labels=inp.labels,
                currency=inp.currency or "",
                billing_cadence=inp.billing_cadence or "",
                pro_rating_enabled=inp.pro_rating_enabled,
                phases=inp.phases,
                created_at=now,
                updated_at=now,
                validation_errors=issues,
            )

        return self._create(inp.key, build)

    def update(self, plan_id: str, inp: PlanInput) -> Plan:
        plan, rev = self.load(plan_id)
        if plan.status(self.now()) is not Status.DRAFT:
            raise self._wrong_status(plan, "updated", "draft")
        issues = self._validate(inp.phases, plan.billing_cadence)
        updated = replace(
            plan,
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            pro_rating_enabled=inp.pro_rating_enabled,
            phases=inp.phases,
            validation_errors=issues,
            updated_at=self.now(),
        )
        return self._save(updated, rev)

    # -- add-ons a plan offers -------------------------------------------------------------------
    def links(self, plan_id: str) -> list[PlanAddon]:
        self.load(plan_id)
        return self.repo.links(plan_id)

    def link(self, plan_id: str, link_id: str) -> PlanAddon:
        for link in self.links(plan_id):
            if link.id == link_id:
                return link
        raise NotFoundError(f"Add-on assignment [{link_id}] of plan [{plan_id}] not found")

    def _draft_plan(self, plan_id: str) -> tuple[Plan, int]:
        plan, rev = self.load(plan_id)
        if plan.status(self.now()) is not Status.DRAFT:
            raise InvalidError.field(
                "planId", "add-ons can be changed on draft plans only (publish locks them)", "invalid", "path"
            )
        return plan, rev

    def _check_link(self, plan: Plan, addon_id: str, inp: PlanAddonInput) -> None:
        found = self.addons.get(addon_id)
        if found is None or found[0].deleted_at is not None:
            raise InvalidError.field("addon.id", f"add-on [{addon_id}] not found")
        addon = found[0]
        problems: list[FieldIssue] = []
        if addon.status(self.now()) is Status.ARCHIVED:
            problems.append(FieldIssue("addon.id", f"add-on [{addon_id}] is archived"))
        if addon.currency != plan.currency:
            problems.append(
                FieldIssue(
                    "addon.id",
                    f"plan_addon_currency_mismatch: currency of the plan ({plan.currency}) "
                    f"and add-on ({addon.currency}) must match",
                )
            )
        if inp.from_plan_phase not in {p.key for p in plan.phases}:
            problems.append(
                FieldIssue(
                    "from_plan_phase",
                    f"plan_addon_unknown_plan_phase_key: [{inp.from_plan_phase}] "
                    f"is not a phase of plan [{plan.id}]",
                )
            )
        if addon.instance_type is InstanceType.SINGLE and inp.max_quantity is not None:
            problems.append(
                FieldIssue(
                    "max_quantity",
                    "plan_addon_max_quantity_must_not_be_set: "
                    "maximum quantity must not be set for add-on with single instance type",
                )
            )
        if problems:
            raise InvalidError(f"Invalid [{problems[0].field}]: {problems[0].reason}", problems)

    def add_link(self, plan_id: str, inp: PlanAddonInput) -> PlanAddon:
        assert inp.addon_id is not None
        plan, rev = self._draft_plan(plan_id)
        self._check_link(plan, inp.addon_id, inp)
        for existing in self.repo.links(plan_id):
            if existing.addon_id == inp.addon_id:
                raise ConflictError(f"Plan [{plan_id}] already offers add-on [{inp.addon_id}]", existing.id)
        now = self.now()
        link = PlanAddon(
            id=new_id(),
            plan_id=plan_id,
            addon_id=inp.addon_id,
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            from_plan_phase=inp.from_plan_phase,
            max_quantity=inp.max_quantity,
            created_at=now,
            updated_at=now,
        )
        try:
            self.repo.put_link(link, rev, new=True)
        except WriteConflict:
            raise ConflictError(
                f"Plan [{plan_id}] changed concurrently or already offers the add-on; retry"
            ) from None
        return link

    def update_link(self, plan_id: str, link_id: str, inp: PlanAddonInput) -> PlanAddon:
        link = self.link(plan_id, link_id)
        plan, rev = self._draft_plan(plan_id)
        self._check_link(plan, link.addon_id, inp)
        updated = replace(
            link,
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            from_plan_phase=inp.from_plan_phase,
            max_quantity=inp.max_quantity,
            updated_at=self.now(),
        )
        try:
            self.repo.put_link(updated, rev, new=False)
        except WriteConflict:
            raise ConflictError(f"Plan [{plan_id}] changed concurrently; retry") from None
        return updated

    def remove_link(self, plan_id: str, link_id: str) -> None:
        link = self.link(plan_id, link_id)
        _, rev = self._draft_plan(plan_id)
        try:
            self.repo.delete_link(link, rev)
        except WriteConflict:
            raise ConflictError(f"Plan [{plan_id}] changed concurrently; retry") from None


class AddonService(_Lifecycle[Addon]):
    kind = "add-on"
    param = "addonId"
    repo: AddonRepository

    def __init__(
        self,
        addons: AddonRepository,
        features: FeatureRepository,
        taxes: TaxCodeService,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(addons, features, taxes, clock or Clock())

    def _validate(
        self, cards: tuple[RateCard, ...], instance_type: InstanceType
    ) -> tuple[ValidationIssue, ...]:
        catalog = self.catalog(cards)
        rules.check_references([(f"rate_cards[{j}]", rc) for j, rc in enumerate(cards)], catalog)
        return tuple(rules.addon_issues(cards, instance_type, catalog))

    def _issues(self, obj: Addon) -> list[ValidationIssue]:
        return list(self._validate(obj.rate_cards, obj.instance_type))

    def create(self, inp: AddonInput) -> Addon:
        assert inp.key and inp.currency
        issues = self._validate(inp.rate_cards, inp.instance_type)
        now = self.now()

        def build(version: int) -> Addon:
            return Addon(
                id=new_id(),
                key=inp.key or "",
                version=version,
                name=inp.name,
                description=inp.description,
                labels=inp.labels,
                currency=inp.currency or "",
                instance_type=inp.instance_type,
                rate_cards=inp.rate_cards,
                created_at=now,
                updated_at=now,
                validation_errors=issues,
            )

        return self._create(inp.key, build)

    def update(self, addon_id: str, inp: AddonInput) -> Addon:
        addon, rev = self.load(addon_id)
        if addon.status(self.now()) is not Status.DRAFT:
            raise self._wrong_status(addon, "updated", "draft")
        updated = replace(
            addon,
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            instance_type=inp.instance_type,
            rate_cards=inp.rate_cards,
            validation_errors=self._validate(inp.rate_cards, inp.instance_type),
            updated_at=self.now(),
        )
        return self._save(updated, rev)


# -- tax codes ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SystemTaxCode:
    stripe_code: str
    name: str


# Stripe tax codes provisioned read-only (keys are the Stripe codes). txcd_10000000 is Stripe's
# default tax code (Stripe fixtures, `tax.settings.defaults`), txcd_99999999 its tangible-goods code
# (fixtures `tax_code`); txcd_10103001 and txcd_00000000 are the SaaS and nontaxable codes the issue names.
SYSTEM_TAX_CODES = (
    SystemTaxCode("txcd_10000000", "General - Electronically Supplied Services"),
    SystemTaxCode("txcd_10103001", "Software as a service (SaaS) - business use"),
    SystemTaxCode("txcd_00000000", "Nontaxable"),
    SystemTaxCode("txcd_99999999", "General - Tangible Goods"),
)
DEFAULT_STRIPE_CODE = "txcd_10000000"
# Fixed ids (timestamp of the Stripe API version the codes come from, randomness from the code), so
# every container provisions the same items and concurrent provisioning converges.
_SYSTEM_EPOCH = datetime(2022, 4, 12, tzinfo=UTC)


def system_tax_code_id(stripe_code: str) -> str:
    millis = int(_SYSTEM_EPOCH.timestamp() * 1000)
    return str(
        ULID.from_bytes(millis.to_bytes(6, "big") + hashlib.sha256(stripe_code.encode()).digest()[:10])
    )


SYSTEM_IDS = {system_tax_code_id(c.stripe_code): c for c in SYSTEM_TAX_CODES}


class TaxCodeService:
    def __init__(self, repo: TaxCodeRepository, clock: Clock | None = None) -> None:
        self.repo = repo
        self.clock = clock or Clock()

    def provision(self) -> DefaultTaxCodes:
        """The system codes and the defaults, created on first use; one GetItem once they exist."""
        defaults = self.repo.defaults()
        if defaults is not None:
            return defaults
        now = self.clock.now()
        for tax_id, code in SYSTEM_IDS.items():
            if self.repo.get(tax_id) is None:
                item = TaxCode(
                    id=tax_id,
                    key=code.stripe_code,
                    name=code.name,
                    app_mappings=(AppMapping(AppType.STRIPE, code.stripe_code),),
                    created_at=_SYSTEM_EPOCH,
                    updated_at=_SYSTEM_EPOCH,
                    system=True,
                )
                # provisioned concurrently, or a user code holds that key: keep theirs
                with contextlib.suppress(WriteConflict):
                    self.repo.create(item)
        default_id = system_tax_code_id(DEFAULT_STRIPE_CODE)
        defaults = DefaultTaxCodes(default_id, default_id, now, now)
        with contextlib.suppress(WriteConflict):
            self.repo.put_defaults(defaults, None)
        found = self.repo.defaults()
        assert found is not None
        return found

    def live_ids(self, ids: set[str]) -> set[str]:
        """The ids among `ids` that name a live tax code."""
        if not ids:
            return set()
        if ids & SYSTEM_IDS.keys():
            self.provision()
        live = set()
        for tax_id in ids:
            code = self.repo.get(tax_id)
            if code is not None and code.deleted_at is None:
                live.add(tax_id)
        return live

    def list(self, include_deleted: bool) -> list[TaxCode]:
        self.provision()
        return self.repo.list_all(include_deleted)

    def get(self, tax_id: str) -> TaxCode:
        self.provision()
        code = self.repo.get(tax_id)
        if code is None:
            raise NotFoundError(f"Tax code [{tax_id}] not found")
        return code

    def create(self, inp: TaxCodeInput) -> TaxCode:
        assert inp.key is not None
        self.provision()
        now = self.clock.now()
        code = TaxCode(
            id=new_id(),
            key=inp.key,
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            app_mappings=inp.app_mappings,
            created_at=now,
            updated_at=now,
        )
        try:
            self.repo.create(code)
        except WriteConflict:
            raise ConflictError(
                f"A tax code with key [{inp.key}] already exists", self.repo.id_for_key(inp.key)
            ) from None
        return code

    def _writable(self, tax_id: str) -> TaxCode:
        code = self.get(tax_id)
        if code.system:
            raise InvalidError.field(
                "taxCodeId",
                f"tax code [{code.key}] is provisioned by Meterline and read-only",
                "invalid",
                "path",
            )
        return code

    def update(self, tax_id: str, inp: TaxCodeInput) -> TaxCode:
        code = self._writable(tax_id)
        if code.deleted_at is not None:
            raise GoneError(f"Tax code [{tax_id}] was deleted")
        updated = replace(
            code,
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            app_mappings=inp.app_mappings,
            updated_at=self.clock.now(),
        )
        try:
            self.repo.update(updated)
        except WriteConflict:
            raise GoneError(f"Tax code [{tax_id}] was deleted") from None
        return updated

    def delete(self, tax_id: str) -> None:
        code = self._writable(tax_id)
        if code.deleted_at is not None:
            raise NotFoundError(f"Tax code [{tax_id}] not found")
        defaults = self.provision()
        if tax_id in defaults.ids():
            which = "invoicing" if tax_id == defaults.invoicing_id else "credit grant"
            raise InvalidError.field(
                "taxCodeId",
                f"tax code [{code.key}] is the {which} default; choose another default first",
                "invalid",
                "path",
            )
        now = self.clock.now()
        try:
            self.repo.delete(replace(code, deleted_at=now, updated_at=now))
        except WriteConflict:
            raise ConflictError(
                f"Tax code [{tax_id}] changed or became a default concurrently; retry"
            ) from None

    def defaults(self) -> DefaultTaxCodes:
        return self.provision()

    def set_defaults(self, inp: DefaultTaxCodesInput) -> DefaultTaxCodes:
        current = self.provision()
        wanted = {"invoicing_tax_code": inp.invoicing_id, "credit_grant_tax_code": inp.credit_grant_id}
        live = self.live_ids({v for v in wanted.values() if v})
        problems = [
            FieldIssue(f"{name}.id", f"tax code [{value}] not found")
            for name, value in wanted.items()
            if value and value not in live
        ]
        if problems:
            raise InvalidError(f"Invalid [{problems[0].field}]: {problems[0].reason}", problems)
        updated = DefaultTaxCodes(
            inp.invoicing_id or current.invoicing_id,
            inp.credit_grant_id or current.credit_grant_id,
            current.created_at,
            self.clock.now(),
        )
        try:
            self.repo.put_defaults(updated, current)
        except WriteConflict:
            raise ConflictError(
                "The default tax codes changed concurrently (or a code was deleted); retry"
            ) from None
        return updated
