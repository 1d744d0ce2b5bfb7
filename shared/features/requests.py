"""Typed inputs of the feature endpoints: the contract's bodies and the list query. The only
features module that knows the wire names.

`CreateFeatureRequest` / `UpdateFeatureRequest` check the plain fields; `unit_cost` (a one-of on `type`)
is parsed by `parse_unit_cost` so errors name `unit_cost.<field>`; the meter reference's filters are
checked by the service against the meter's dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shared.api.params import Page, StringFilter, nested, page_params, string_filters, ulid_filter
from shared.api.problem import BadRequest, invalid_parameter
from shared.api.validation import invalid_parameters, validate_model
from shared.core.ids import ULID_PATTERN
from shared.core.labels import check_labels
from shared.features.models import LLM_DIMENSIONS, LlmUnitCost, ManualUnitCost, TokenType, UnitCost
from shared.meters.models import RESOURCE_KEY

# Contract `BillingFeatureManualUnitCost.amount`.
DECIMAL = r"^\-?[0-9]+(\.[0-9]+)?$"
MAX_METER_FILTERS = 10
UNIT_COST_TYPES = ("manual", "llm")
STRING_FILTERS = ("key", "name")

Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]


class MeterReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ULID_PATTERN.pattern)
    # Each value is a contract QueryFilterStringMapItem, checked by the service (`validate_filter`).
    filters: dict[str, Any] | None = Field(default=None, max_length=MAX_METER_FILTERS)


class CreateFeatureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = frozenset()  # no field takes null (see validate_model)

    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    labels: Labels = None
    key: str = Field(min_length=1, max_length=64, pattern=RESOURCE_KEY)
    meter: MeterReference | None = None
    unit_cost: dict[str, Any] | None = None


class UpdateFeatureRequest(BaseModel):
    """Only `unit_cost` can change: `null` clears it, omitting it keeps it."""

    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = frozenset(
        {"unit_cost"}
    )  # contract `nullable: true` fields (null clears)

    unit_cost: dict[str, Any] | None = None


class _ManualUnitCostRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["manual"]
    amount: str = Field(pattern=DECIMAL)


_Name = Annotated[str | None, Field(min_length=1)]


class _LlmUnitCostRequest(BaseModel):
    # `pricing` is read-only (resolved from the LLM cost database): sending it is an unknown property.
    model_config = ConfigDict(extra="forbid")

    type: Literal["llm"]
    provider: _Name = None
    provider_property: _Name = None
    model: _Name = None
    model_property: _Name = None
    token_type: TokenType | None = None
    token_type_property: _Name = None


def parse_unit_cost(data: dict[str, Any], field_name: str = "unit_cost") -> UnitCost:
    """Validate a request's `unit_cost` (contract one-of on `type`); errors name `unit_cost.<field>`."""
    kind = data.get("type")
    if kind is None:
        raise BadRequest.field(f"{field_name}.type", "is required: one of manual, llm", "required")
    if kind not in UNIT_COST_TYPES:
        reason = "must be one of manual, llm"
        param = {**invalid_parameter(f"{field_name}.type", reason, "enum"), "choices": list(UNIT_COST_TYPES)}
        raise BadRequest(f"Invalid [{field_name}.type]: {reason}", [param])
    model = _ManualUnitCostRequest if kind == "manual" else _LlmUnitCostRequest
    try:
        req = model.model_validate(data)
    except ValidationError as exc:
        params = invalid_parameters(exc, prefix=field_name)
        raise BadRequest(f"Invalid [{params[0]['field']}]: {params[0]['reason']}", params) from exc
    if isinstance(req, _ManualUnitCostRequest):
        return ManualUnitCost(Decimal(req.amount))
    for dim in LLM_DIMENSIONS:
        static, prop = f"{field_name}.{dim}", f"{field_name}.{dim}_property"
        given = [name for name in (dim, f"{dim}_property") if getattr(req, name) is not None]
        if len(given) == 1:
            continue
        if given:
            reason = f"{dim} and {dim}_property are mutually exclusive; set one"
            rule = "invalid"
        else:
            reason = f"one of {dim} or {dim}_property is required"
            rule = "required"
        raise BadRequest(
            f"Invalid [{static}] / [{prop}]: {reason}",
            [invalid_parameter(static, reason, rule), invalid_parameter(prop, reason, rule)],
        )
    return LlmUnitCost(
        provider=req.provider,
        provider_property=req.provider_property,
        model=req.model,
        model_property=req.model_property,
        token_type=req.token_type,
        token_type_property=req.token_type_property,
    )


@dataclass(frozen=True)
class CreateFeature:
    req: CreateFeatureRequest
    unit_cost: UnitCost | None


@dataclass(frozen=True)
class UpdateFeature:
    unit_cost_set: bool  # omitted keeps the unit cost; null clears it
    unit_cost: UnitCost | None


@dataclass(frozen=True)
class ListFeaturesQuery:
    page: Page
    filters: list[StringFilter]
    sort: str | None


def create_feature(body: Any) -> CreateFeature:
    req = validate_model(CreateFeatureRequest, body)
    return CreateFeature(req, parse_unit_cost(req.unit_cost) if req.unit_cost is not None else None)


def update_feature(body: Any) -> UpdateFeature:
    req = validate_model(UpdateFeatureRequest, body)
    unit_cost = parse_unit_cost(req.unit_cost) if req.unit_cost is not None else None
    return UpdateFeature("unit_cost" in req.model_fields_set, unit_cost)


def list_features(params: dict[str, str] | None) -> ListFeaturesQuery:
    page = page_params(params)
    params = params or {}
    meter = nested(params, "filter").get("meter_id")
    rest = {k: v for k, v in params.items() if not k.startswith("filter[meter_id]")}
    filters = string_filters(rest, (*STRING_FILTERS, "meter_id"))
    if meter is not None:
        filters.append(ulid_filter("meter_id", meter))
    return ListFeaturesQuery(page, filters, params.get("sort"))
