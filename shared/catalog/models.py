"""Catalog domain types: what a company sells (engine-rules §2.6, product.md §7-§9).

Money is Decimal (decimal strings on the wire). A plan is one version of a key; its status is derived
from `effective_from` / `effective_to` at a given instant, never stored. `validation_errors` are the
engine's publish-blocking issues (codes from openmeter `productcatalog/errors.go`), recomputed on every
write and again at publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class PriceType(StrEnum):
    FREE = "free"
    FLAT = "flat"
    UNIT = "unit"
    GRADUATED = "graduated"
    VOLUME = "volume"


USAGE_PRICES = (PriceType.UNIT, PriceType.GRADUATED, PriceType.VOLUME)


class PaymentTerm(StrEnum):
    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"


class Rounding(StrEnum):
    CEILING = "ceiling"
    FLOOR = "floor"
    HALF_UP = "half_up"
    NONE = "none"


class UnitOperation(StrEnum):
    DIVIDE = "divide"
    MULTIPLY = "multiply"


class TaxBehavior(StrEnum):
    INCLUSIVE = "inclusive"
    EXCLUSIVE = "exclusive"


class EntitlementType(StrEnum):
    METERED = "metered"
    STATIC = "static"
    BOOLEAN = "boolean"


class RateCardType(StrEnum):
    """Not on the v3 wire: derived from the price (free and flat are fees, the rest is usage)."""

    FLAT_FEE = "flat_fee"
    USAGE_BASED = "usage_based"


class Status(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ARCHIVED = "archived"


class InstanceType(StrEnum):
    SINGLE = "single"
    MULTIPLE = "multiple"


class AppType(StrEnum):
    SANDBOX = "sandbox"
    STRIPE = "stripe"
    EXTERNAL_INVOICING = "external_invoicing"


def status_at(effective_from: datetime | None, effective_to: datetime | None, now: datetime) -> Status:
    """The contract's rule: draft without `effective_from`; archived once `effective_to <= now`."""
    if effective_from is None:
        return Status.DRAFT
    if effective_to is not None and effective_to <= now:
        return Status.ARCHIVED
    if now < effective_from:
        return Status.SCHEDULED
    return Status.ACTIVE


@dataclass(frozen=True)
class Tier:
    """`up_to` is inclusive; None only on the last (open-ended) tier. At least one component is set."""

    up_to: Decimal | None = None
    flat: Decimal | None = None
    unit: Decimal | None = None


@dataclass(frozen=True)
class Price:
    type: PriceType
    amount: Decimal | None = None  # flat and unit
    tiers: tuple[Tier, ...] = ()  # graduated and volume

    @property
    def usage_based(self) -> bool:
        return self.type in USAGE_PRICES


@dataclass(frozen=True)
class UnitConfig:
    """Converts the metered quantity before pricing (product.md §8); rounding is for invoicing only."""

    operation: UnitOperation
    conversion_factor: Decimal
    rounding: Rounding = Rounding.NONE
    precision: int = 0
    display_unit: str | None = None


@dataclass(frozen=True)
class Discounts:
    percentage: Decimal | None = None  # 0..100
    usage: Decimal | None = None  # free units per billing period


@dataclass(frozen=True)
class Commitments:
    minimum: Decimal | None = None
    maximum: Decimal | None = None


@dataclass(frozen=True)
class TaxConfig:
    code_id: str
    behavior: TaxBehavior | None = None


@dataclass(frozen=True)
class EntitlementTemplate:
    type: EntitlementType
    is_soft_limit: bool = False
    limit: Decimal | None = None  # metered: allowance per usage period
    usage_period: str | None = None  # metered: defaults to the rate card's (else the plan's) cadence
    config: Any = None  # static: a JSON object


@dataclass(frozen=True)
class RateCard:
    key: str
    name: str
    price: Price
    description: str | None = None
    labels: dict[str, str] | None = None
    feature_id: str | None = None
    billing_cadence: str | None = None  # None: one-time (flat prices only)
    payment_term: PaymentTerm = PaymentTerm.IN_ARREARS
    unit_config: UnitConfig | None = None
    commitments: Commitments | None = None
    discounts: Discounts | None = None
    tax_config: TaxConfig | None = None
    entitlement: EntitlementTemplate | None = None

    @property
    def type(self) -> RateCardType:
        return RateCardType.USAGE_BASED if self.price.usage_based else RateCardType.FLAT_FEE


@dataclass(frozen=True)
class Phase:
    key: str
    name: str
    rate_cards: tuple[RateCard, ...]
    duration: str | None = None  # None: runs forever (the last phase only)
    description: str | None = None
    labels: dict[str, str] | None = None


@dataclass(frozen=True)
class ValidationIssue:
    """An engine validation error on a stored draft: it blocks publishing."""

    code: str
    message: str
    field: str
    attributes: dict[str, Any] | None = None


@dataclass
class Plan:
    id: str
    key: str
    version: int
    name: str
    currency: str
    billing_cadence: str
    phases: tuple[Phase, ...]
    created_at: datetime
    updated_at: datetime
    pro_rating_enabled: bool = True
    description: str | None = None
    labels: dict[str, str] | None = None
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    deleted_at: datetime | None = None
    settlement_mode: str = "credit_then_invoice"
    validation_errors: tuple[ValidationIssue, ...] = ()

    def status(self, now: datetime) -> Status:
        return status_at(self.effective_from, self.effective_to, now)

    def rate_cards(self) -> list[tuple[str, RateCard]]:
        """(field path, rate card) for every rate card of every phase."""
        return [
            (f"phases[{i}].rate_cards[{j}]", rc)
            for i, phase in enumerate(self.phases)
            for j, rc in enumerate(phase.rate_cards)
        ]


@dataclass
class Addon:
    id: str
    key: str
    version: int
    name: str
    currency: str
    instance_type: InstanceType
    rate_cards: tuple[RateCard, ...]
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    deleted_at: datetime | None = None
    validation_errors: tuple[ValidationIssue, ...] = ()

    def status(self, now: datetime) -> Status:
        return status_at(self.effective_from, self.effective_to, now)


@dataclass
class PlanAddon:
    """An add-on a plan offers, from one of its phases; `max_quantity` only for multi-instance add-ons."""

    id: str
    plan_id: str
    addon_id: str
    name: str
    from_plan_phase: str
    created_at: datetime
    updated_at: datetime
    max_quantity: int | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    deleted_at: datetime | None = None
    validation_errors: tuple[ValidationIssue, ...] = ()


@dataclass(frozen=True)
class AppMapping:
    app_type: AppType
    tax_code: str


@dataclass
class TaxCode:
    id: str
    key: str
    name: str
    app_mappings: tuple[AppMapping, ...]
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    deleted_at: datetime | None = None
    system: bool = False  # provisioned by Meterline (a Stripe code): read-only


@dataclass
class DefaultTaxCodes:
    """The organisation's default tax code per category; each must be a live tax code."""

    invoicing_id: str
    credit_grant_id: str
    created_at: datetime
    updated_at: datetime

    def ids(self) -> set[str]:
        return {self.invoicing_id, self.credit_grant_id}


@dataclass
class Catalog:
    """Lookups the rules need, resolved once per request by the service."""

    feature_meters: dict[str, str | None] = field(default_factory=dict)  # live feature id -> meter id
    feature_keys: dict[str, str] = field(default_factory=dict)  # live feature id -> key
    tax_codes: set[str] = field(default_factory=set)  # live tax code ids
