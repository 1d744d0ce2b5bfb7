"""Typed catalog inputs parsed from HTTP bodies: the only module that knows the wire names.

Pydantic checks each field against the contract's schema; the one-ofs (`price`, `entitlement`) are
parsed per `type` so errors name `…price.amount`, not a union branch. What needs no lookup is checked
here too (tier order, conversion factor, payment term and commitments only where the contract allows
them); what needs other aggregates (features, tax codes) is `rules.py`'s job. Every problem is an
`InvalidError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from shared.api.validation import invalid_parameters
from shared.catalog import views
from shared.catalog.cadence import Cadence
from shared.catalog.errors import FieldIssue, InvalidError, Source
from shared.catalog.models import (
    AppMapping,
    AppType,
    Commitments,
    Discounts,
    EntitlementTemplate,
    EntitlementType,
    InstanceType,
    PaymentTerm,
    Phase,
    Price,
    PriceType,
    RateCard,
    Rounding,
    TaxBehavior,
    TaxConfig,
    Tier,
    UnitConfig,
    UnitOperation,
)
from shared.core.durations import MAX_YEARS, longer_than_max
from shared.core.ids import ULID_PATTERN
from shared.core.labels import check_labels

M = TypeVar("M", bound=BaseModel)

KEY = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"
DECIMAL = r"^\-?[0-9]+(\.[0-9]+)?$"
ISO_DURATION = (
    r"^P(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?$"
)
# DynamoDB numbers carry 38 significant digits; amounts are stored as strings but stay in that range.
MAX_DIGITS = 38
MAX_PHASES = 20
MAX_RATE_CARDS = 100
MAX_TIERS = 100
# A version is one DynamoDB item (400 KB at most): its phases / rate cards as stored JSON stay below this.
MAX_STORED_BYTES = 300_000


def _duration(value: str) -> str:
    try:
        cadence = Cadence.parse(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 duration of whole units (e.g. P1M, P1D, PT1H)") from None
    if not cadence.positive:
        raise ValueError("must be a positive duration")
    if longer_than_max(value):  # cadences and phases are added to dates: longer ones overflow (a 500)
        raise ValueError(f"must be at most {MAX_YEARS} years (P{MAX_YEARS}Y)")
    return value


def _decimal(value: str) -> Decimal:
    number = Decimal(value)
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"must have at most {MAX_DIGITS} significant digits")
    return number


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


Key = Annotated[str, Field(min_length=1, max_length=64, pattern=KEY)]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Description = Annotated[str | None, Field(default=None, max_length=1024)]
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]
Duration = Annotated[str, Field(pattern=ISO_DURATION), AfterValidator(_duration)]
SignedDecimal = Annotated[str, Field(pattern=DECIMAL), AfterValidator(_decimal)]
Money = Annotated[str, Field(pattern=DECIMAL), AfterValidator(_decimal), AfterValidator(_non_negative)]
Ulid = Annotated[str, Field(pattern=ULID_PATTERN.pattern)]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ref(_Strict):
    id: Ulid


# -- prices -------------------------------------------------------------------------------------
class _FreePrice(_Strict):
    type: Literal["free"]


class _AmountPrice(_Strict):
    type: Literal["flat", "unit"]
    amount: Money


class _TierComponent(_Strict):
    type: str
    amount: Money


class _FlatComponent(_TierComponent):
    type: Literal["flat"]


class _UnitComponent(_TierComponent):
    type: Literal["unit"]


class _Tier(_Strict):
    up_to_amount: Money | None = None
    flat_price: _FlatComponent | None = None
    unit_price: _UnitComponent | None = None


class _TieredPrice(_Strict):
    type: Literal["graduated", "volume"]
    tiers: list[_Tier] = Field(min_length=1, max_length=MAX_TIERS)


_PRICE_MODELS: dict[str, type[BaseModel]] = {
    "free": _FreePrice,
    "flat": _AmountPrice,
    "unit": _AmountPrice,
    "graduated": _TieredPrice,
    "volume": _TieredPrice,
}


# -- entitlement templates ----------------------------------------------------------------------
class _MeteredTemplate(_Strict):
    type: Literal["metered"]
    is_soft_limit: StrictBool = False
    limit: Annotated[Decimal, Field(ge=0, max_digits=MAX_DIGITS)] | None = None
    usage_period: Duration | None = None


class _StaticTemplate(_Strict):
    type: Literal["static"]
    config: Any


class _BooleanTemplate(_Strict):
    type: Literal["boolean"]


_TEMPLATE_MODELS: dict[str, type[BaseModel]] = {
    "metered": _MeteredTemplate,
    "static": _StaticTemplate,
    "boolean": _BooleanTemplate,
}


# -- rate cards, phases, plans ------------------------------------------------------------------
class _UnitConfig(_Strict):
    operation: UnitOperation
    conversion_factor: SignedDecimal
    rounding: Rounding = Rounding.NONE
    precision: Annotated[StrictInt, Field(ge=0, le=20)] = 0
    display_unit: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class _Commitments(_Strict):
    minimum_amount: Money | None = None
    maximum_amount: Money | None = None


class _Discounts(_Strict):
    percentage: Annotated[Decimal, Field(ge=0, le=100, max_digits=MAX_DIGITS)] | None = None
    usage: SignedDecimal | None = None


class _TaxConfig(_Strict):
    behavior: TaxBehavior | None = None
    code: Ref


class RateCardRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    key: Key
    feature: Ref | None = None
    billing_cadence: Duration | None = None
    price: dict[str, Any]
    unit_config: _UnitConfig | None = None
    payment_term: PaymentTerm | None = None
    commitments: _Commitments | None = None
    discounts: _Discounts | None = None
    tax_config: _TaxConfig | None = None
    entitlement: dict[str, Any] | None = None


class PhaseRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    key: Key
    duration: Duration | None = None
    rate_cards: list[dict[str, Any]] = Field(max_length=MAX_RATE_CARDS)


class CreatePlanRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    key: Key
    currency: Currency
    billing_cadence: Duration
    pro_rating_enabled: StrictBool = True
    phases: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_PHASES)


class UpsertPlanRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    pro_rating_enabled: StrictBool = True
    phases: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_PHASES)


class CreateAddonRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    key: Key
    instance_type: InstanceType
    currency: Currency
    rate_cards: list[dict[str, Any]] = Field(max_length=MAX_RATE_CARDS)


class UpsertAddonRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    instance_type: InstanceType
    rate_cards: list[dict[str, Any]] = Field(max_length=MAX_RATE_CARDS)


class CreatePlanAddonRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    addon: Ref
    from_plan_phase: Key
    max_quantity: Annotated[StrictInt, Field(ge=1)] | None = None


class UpsertPlanAddonRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    from_plan_phase: Key
    max_quantity: Annotated[StrictInt, Field(ge=1)] | None = None


class _AppMapping(_Strict):
    app_type: AppType
    tax_code: Annotated[str, Field(min_length=1, max_length=256)]


class CreateTaxCodeRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    key: Key
    app_mappings: list[_AppMapping] = Field(max_length=len(AppType))


class UpsertTaxCodeRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    app_mappings: list[_AppMapping] = Field(max_length=len(AppType))


class UpdateDefaultTaxCodesRequest(_Strict):
    invoicing_tax_code: Ref | None = None
    credit_grant_tax_code: Ref | None = None


# -- parsing ------------------------------------------------------------------------------------
def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def parse(model: type[M], data: Any, prefix: str = "", source: Source = "body") -> M:
    """`model` from `data`, or InvalidError naming every bad field under `prefix`."""
    where = prefix or source
    if not isinstance(data, dict):
        raise InvalidError.field(where, "must be a JSON object", "is_object", source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for p in invalid_parameters(exc, source, prefix):
            extra = {k: v for k, v in p.items() if k not in ("field", "reason", "rule", "source")}
            issues.append(FieldIssue(p["field"], p["reason"], p.get("rule", "invalid"), source, extra))
        raise InvalidError(f"Invalid [{issues[0].field}]: {issues[0].reason}", issues) from exc


def _one_of(data: dict[str, Any], models: dict[str, type[BaseModel]], prefix: str) -> BaseModel:
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in models:
        choices = list(models)
        raise InvalidError(
            f"Invalid [{prefix}.type]: must be one of {', '.join(choices)}",
            [
                FieldIssue(
                    f"{prefix}.type",
                    f"must be one of {', '.join(choices)}",
                    "enum",
                    extra={"choices": choices},
                )
            ],
        )
    return parse(models[kind], data, prefix)


def _price(data: dict[str, Any], prefix: str) -> Price:
    req = _one_of(data, _PRICE_MODELS, prefix)
    if isinstance(req, _FreePrice):
        return Price(PriceType.FREE)
    if isinstance(req, _AmountPrice):
        return Price(PriceType(req.type), amount=Decimal(req.amount))
    assert isinstance(req, _TieredPrice)
    tiers: list[Tier] = []
    last_bound: Decimal | None = None
    for i, t in enumerate(req.tiers):
        where = f"{prefix}.tiers[{i}]"
        if t.flat_price is None and t.unit_price is None:
            raise InvalidError.field(where, "set flat_price, unit_price or both", "required")
        bound = Decimal(t.up_to_amount) if t.up_to_amount is not None else None
        if bound is None and i != len(req.tiers) - 1:
            raise InvalidError.field(
                f"{where}.up_to_amount", "only the last tier may be open-ended", "required"
            )
        if bound is not None and last_bound is not None and bound <= last_bound:
            raise InvalidError.field(
                f"{where}.up_to_amount", "tier bounds must increase from one tier to the next"
            )
        last_bound = bound
        tiers.append(
            Tier(
                up_to=bound,
                flat=Decimal(t.flat_price.amount) if t.flat_price else None,
                unit=Decimal(t.unit_price.amount) if t.unit_price else None,
            )
        )
    return Price(PriceType(req.type), tiers=tuple(tiers))


def price(data: Any, prefix: str) -> Price:
    """A contract `BillingPrice` (free, flat, unit, graduated, volume) at `prefix`: what charges reuse."""
    if not isinstance(data, dict):
        raise InvalidError.field(prefix, "must be a JSON object", "is_object")
    return _price(data, prefix)


def _entitlement(data: dict[str, Any], prefix: str) -> EntitlementTemplate:
    req = _one_of(data, _TEMPLATE_MODELS, prefix)
    if isinstance(req, _MeteredTemplate):
        return EntitlementTemplate(
            EntitlementType.METERED,
            is_soft_limit=req.is_soft_limit,
            limit=req.limit,
            usage_period=req.usage_period,
        )
    if isinstance(req, _StaticTemplate):
        config = req.config
        if isinstance(config, str):  # the entitlements API's JSON-string form is accepted too
            try:
                config = orjson.loads(config)
            except orjson.JSONDecodeError:
                config = None
        if not isinstance(config, dict):
            # `entitlement_template_invalid_json_config` is critical in the engine: rejected outright.
            raise InvalidError.field(f"{prefix}.config", "must be a JSON object", "is_object")
        return EntitlementTemplate(EntitlementType.STATIC, config=config)
    return EntitlementTemplate(EntitlementType.BOOLEAN)


def rate_card(data: Any, prefix: str) -> RateCard:
    req = parse(RateCardRequest, data, prefix)
    price = _price(req.price, _join(prefix, "price"))
    term = req.payment_term or PaymentTerm.IN_ARREARS
    if term is PaymentTerm.IN_ADVANCE and price.type is not PriceType.FLAT:
        raise InvalidError.field(_join(prefix, "payment_term"), "in_advance is only allowed for flat prices")
    if req.billing_cadence is None and price.usage_based:
        raise InvalidError.field(
            _join(prefix, "billing_cadence"),
            "is required for usage-based prices (only flat fees are one-time)",
            "required",
        )
    commitments = None
    if req.commitments is not None:
        where = _join(prefix, "commitments")
        if not price.usage_based:
            raise InvalidError.field(
                where, "only usage-based prices (unit, graduated, volume) take commitments"
            )
        low, high = req.commitments.minimum_amount, req.commitments.maximum_amount
        commitments = Commitments(
            Decimal(low) if low is not None else None, Decimal(high) if high is not None else None
        )
        low_d, high_d = commitments.minimum, commitments.maximum
        if low_d is not None and high_d is not None and low_d > high_d:
            raise InvalidError.field(f"{where}.minimum_amount", "must not exceed maximum_amount")
    unit_config = None
    if req.unit_config is not None:
        factor = Decimal(req.unit_config.conversion_factor)
        if factor <= 0:
            raise InvalidError.field(_join(prefix, "unit_config.conversion_factor"), "must be positive")
        unit_config = UnitConfig(
            req.unit_config.operation,
            factor,
            req.unit_config.rounding,
            req.unit_config.precision,
            req.unit_config.display_unit,
        )
    discounts = None
    if req.discounts is not None and (req.discounts.percentage, req.discounts.usage) != (None, None):
        usage = req.discounts.usage
        discounts = Discounts(req.discounts.percentage, Decimal(usage) if usage is not None else None)
    entitlement = None
    if req.entitlement is not None:
        entitlement = _entitlement(req.entitlement, _join(prefix, "entitlement"))
        if entitlement.type is EntitlementType.METERED and entitlement.usage_period is None:
            # The contract's default: the rate card's cadence (a one-time card leaves it to the plan's).
            entitlement = replace(entitlement, usage_period=req.billing_cadence)
    return RateCard(
        key=req.key,
        name=req.name,
        price=price,
        description=req.description,
        labels=req.labels,
        feature_id=req.feature.id if req.feature else None,
        billing_cadence=req.billing_cadence,
        payment_term=term,
        unit_config=unit_config,
        commitments=commitments,
        discounts=discounts,
        tax_config=TaxConfig(req.tax_config.code.id, req.tax_config.behavior) if req.tax_config else None,
        entitlement=entitlement,
    )


def rate_cards(items: list[Any], prefix: str) -> tuple[RateCard, ...]:
    return tuple(rate_card(item, f"{prefix}[{i}]") for i, item in enumerate(items))


def app_mappings(items: list[_AppMapping]) -> tuple[AppMapping, ...]:
    seen: set[AppType] = set()
    for i, m in enumerate(items):
        if m.app_type in seen:
            raise InvalidError.field(f"app_mappings[{i}].app_type", f"[{m.app_type}] is mapped twice")
        seen.add(m.app_type)
    return tuple(AppMapping(m.app_type, m.tax_code) for m in items)


def phases(items: list[Any]) -> tuple[Phase, ...]:
    out = []
    for i, item in enumerate(items):
        req = parse(PhaseRequest, item, f"phases[{i}]")
        out.append(
            Phase(
                key=req.key,
                name=req.name,
                rate_cards=rate_cards(req.rate_cards, f"phases[{i}].rate_cards"),
                duration=req.duration,
                description=req.description,
                labels=req.labels,
            )
        )
    return tuple(out)


# -- typed inputs of the use cases ----------------------------------------------------------------
@dataclass(frozen=True)
class PlanInput:
    """A plan version's editable content; `key`, `currency`, `billing_cadence` only on create."""

    name: str
    phases: tuple[Phase, ...]
    pro_rating_enabled: bool = True
    description: str | None = None
    labels: dict[str, str] | None = None
    key: str | None = None
    currency: str | None = None
    billing_cadence: str | None = None


@dataclass(frozen=True)
class AddonInput:
    name: str
    instance_type: InstanceType
    rate_cards: tuple[RateCard, ...]
    description: str | None = None
    labels: dict[str, str] | None = None
    key: str | None = None
    currency: str | None = None


@dataclass(frozen=True)
class PlanAddonInput:
    name: str
    from_plan_phase: str
    max_quantity: int | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    addon_id: str | None = None  # create only


@dataclass(frozen=True)
class TaxCodeInput:
    name: str
    app_mappings: tuple[AppMapping, ...]
    description: str | None = None
    labels: dict[str, str] | None = None
    key: str | None = None  # create only


@dataclass(frozen=True)
class DefaultTaxCodesInput:
    invoicing_id: str | None = None
    credit_grant_id: str | None = None


def _fits(content: list[dict[str, Any]], field: str) -> None:
    """One version is one item: refuse content whose stored JSON would not fit (a 400, not a 500)."""
    size = len(orjson.dumps(content))
    if size > MAX_STORED_BYTES:
        raise InvalidError.field(
            field, f"is {size} bytes of JSON; a version holds at most {MAX_STORED_BYTES}"
        )


def _phases_that_fit(items: list[Any]) -> tuple[Phase, ...]:
    parsed = phases(items)
    _fits([views.phase(p) for p in parsed], "phases")
    return parsed


def _cards_that_fit(items: list[Any]) -> tuple[RateCard, ...]:
    parsed = rate_cards(items, "rate_cards")
    _fits([views.rate_card(rc) for rc in parsed], "rate_cards")
    return parsed


def create_plan(body: Any) -> PlanInput:
    req = parse(CreatePlanRequest, body)
    return PlanInput(
        req.name,
        _phases_that_fit(req.phases),
        req.pro_rating_enabled,
        req.description,
        req.labels,
        req.key,
        req.currency,
        req.billing_cadence,
    )


def update_plan(body: Any) -> PlanInput:
    req = parse(UpsertPlanRequest, body)
    return PlanInput(
        req.name, _phases_that_fit(req.phases), req.pro_rating_enabled, req.description, req.labels
    )


def create_addon(body: Any) -> AddonInput:
    req = parse(CreateAddonRequest, body)
    cards = _cards_that_fit(req.rate_cards)
    return AddonInput(req.name, req.instance_type, cards, req.description, req.labels, req.key, req.currency)


def update_addon(body: Any) -> AddonInput:
    req = parse(UpsertAddonRequest, body)
    cards = _cards_that_fit(req.rate_cards)
    return AddonInput(req.name, req.instance_type, cards, req.description, req.labels)


def create_plan_addon(body: Any) -> PlanAddonInput:
    req = parse(CreatePlanAddonRequest, body)
    return PlanAddonInput(
        req.name, req.from_plan_phase, req.max_quantity, req.description, req.labels, req.addon.id
    )


def update_plan_addon(body: Any) -> PlanAddonInput:
    req = parse(UpsertPlanAddonRequest, body)
    return PlanAddonInput(req.name, req.from_plan_phase, req.max_quantity, req.description, req.labels)


def create_tax_code(body: Any) -> TaxCodeInput:
    req = parse(CreateTaxCodeRequest, body)
    return TaxCodeInput(req.name, app_mappings(req.app_mappings), req.description, req.labels, req.key)


def update_tax_code(body: Any) -> TaxCodeInput:
    req = parse(UpsertTaxCodeRequest, body)
    return TaxCodeInput(req.name, app_mappings(req.app_mappings), req.description, req.labels)


def update_default_tax_codes(body: Any) -> DefaultTaxCodesInput:
    req = parse(UpdateDefaultTaxCodesRequest, body)
    return DefaultTaxCodesInput(
        req.invoicing_tax_code.id if req.invoicing_tax_code else None,
        req.credit_grant_tax_code.id if req.credit_grant_tax_code else None,
    )


def path_id(value: str, name: str) -> str:
    """A path parameter that must be a ULID (the contract's `ULID` schema)."""
    if not ULID_PATTERN.match(value):
        raise InvalidError.field(name, "must be a ULID", "matches_regex", "path")
    return value
