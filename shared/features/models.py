"""Feature domain model, its unit cost, and the contract's request shapes.

`CreateFeatureRequest` / `UpdateFeatureRequest` check the plain fields; `unit_cost` (a one-of on `type`)
is parsed by `parse_unit_cost` so errors name `unit_cost.<field>`, and the meter reference's filters are
checked by the service against the meter's dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shared.api.problem import BadRequest, invalid_parameter
from shared.api.validation import invalid_parameters
from shared.core.ids import ULID_PATTERN
from shared.core.labels import check_labels
from shared.core.timeutil import format_rfc3339
from shared.meters.models import RESOURCE_KEY

# Contract `BillingFeatureManualUnitCost.amount`.
DECIMAL = r"^\-?[0-9]+(\.[0-9]+)?$"
MAX_METER_FILTERS = 10
UNIT_COST_TYPES = ("manual", "llm")
# The LLM lookup dimensions: each is a static value or the name of a meter dimension, never both.
LLM_DIMENSIONS = ("provider", "model", "token_type")

Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]


class TokenType(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    CACHE_READ = "cache_read"
    CACHE_WRITE = "cache_write"
    REASONING = "reasoning"
    REQUEST = "request"  # alias of input
    RESPONSE = "response"  # alias of output

    @property
    def canonical(self) -> TokenType:
        """`request` is input and `response` is output; every other value is itself."""
        return {TokenType.REQUEST: TokenType.INPUT, TokenType.RESPONSE: TokenType.OUTPUT}.get(self, self)


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


@dataclass(frozen=True)
class ManualUnitCost:
    """A fixed per-unit cost in USD."""

    amount: Decimal
    type: ClassVar[str] = "manual"

    def to_api(self) -> dict[str, Any]:
        return {"type": self.type, "amount": format(self.amount, "f")}


@dataclass(frozen=True)
class LlmUnitCost:
    """Per-token cost from the LLM cost database; each dimension is static or a meter dimension's name."""

    provider: str | None = None
    provider_property: str | None = None
    model: str | None = None
    model_property: str | None = None
    token_type: TokenType | None = None
    token_type_property: str | None = None
    type: ClassVar[str] = "llm"

    @property
    def properties(self) -> dict[str, str]:
        """`<dimension>_property` field -> the meter dimension it names (set ones only)."""
        named = {f"{d}_property": getattr(self, f"{d}_property") for d in LLM_DIMENSIONS}
        return {k: v for k, v in named.items() if v is not None}

    def to_api(self) -> dict[str, Any]:
        # `pricing` is not resolved yet (the LLM cost database comes later), so it is omitted.
        body: dict[str, Any] = {"type": self.type}
        for name in ("provider", "provider_property", "model", "model_property"):
            if (value := getattr(self, name)) is not None:
                body[name] = value
        if self.token_type is not None:
            body["token_type"] = self.token_type.value
        if self.token_type_property is not None:
            body["token_type_property"] = self.token_type_property
        return body


UnitCost = ManualUnitCost | LlmUnitCost


def unit_cost_from_api(data: dict[str, Any]) -> UnitCost:
    """A stored (already validated) unit cost, in its API shape, back to the domain value."""
    if data["type"] == ManualUnitCost.type:
        return ManualUnitCost(Decimal(data["amount"]))
    token_type = data.get("token_type")
    return LlmUnitCost(
        provider=data.get("provider"),
        provider_property=data.get("provider_property"),
        model=data.get("model"),
        model_property=data.get("model_property"),
        token_type=TokenType(token_type) if token_type else None,
        token_type_property=data.get("token_type_property"),
    )


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


@dataclass
class Feature:
    id: str
    key: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    # No meter: a static feature (boolean/static entitlements, flat fees).
    meter_id: str | None = None
    # meter dimension -> contract QueryFilterStringMapItem (see shared.usage.filters.matches)
    meter_filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    unit_cost: UnitCost | None = None
    # DELETE archives: the contract calls it `deleted_at`. Archived features keep their id, lose their key.
    archived_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
        }
        if self.description is not None:
            body["description"] = self.description
        if self.labels is not None:
            body["labels"] = self.labels
        if self.meter_id is not None:
            body["meter"] = {"id": self.meter_id}
            if self.meter_filters:
                body["meter"]["filters"] = dict(self.meter_filters)
        if self.unit_cost is not None:
            body["unit_cost"] = self.unit_cost.to_api()
        if self.archived_at is not None:
            body["deleted_at"] = format_rfc3339(self.archived_at)
        return body
