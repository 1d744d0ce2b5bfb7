"""Typed inputs of the charge endpoints, parsed from HTTP: the only module that knows the wire names.

Bodies are the contract's `CreateChargeRequest` one-of, dispatched on `type` so errors name the
field of the branch sent (`amount_before_proration.amount`, `price.tiers[0]...`); the usage price is
the catalog's own `BillingPrice` parsing. Rules that need no lookup are checked here: periods
non-empty and nested (full service period around the service period), a usage charge invoiced no
earlier than its service period ends (its usage would be cut short), an ISO 4217 currency with a
minor unit (charges are invoiced; the contract's 3-letter pattern leaves custom currencies, 4-24
characters in product.md §14, out), a flat amount in the charge's currency. Every problem is a 400
naming the field; nothing is written.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from shared.api.params import Page, StringFilter, nested, page_params
from shared.api.problem import BadRequest
from shared.api.validation import Rfc3339, validate_model
from shared.catalog import requests as catalog_requests
from shared.catalog.models import PaymentTerm, Price, PriceType, TaxBehavior
from shared.charges.models import ChargeStatus, ChargeType, ProrationMode, SettlementMode
from shared.core.errors import InvalidInput
from shared.core.ids import ULID_PATTERN, is_ulid
from shared.core.labels import check_labels
from shared.core.timeutil import instant_problem
from shared.rating.models import Period
from shared.rating.money import currency_precision

DECIMAL = r"^\-?[0-9]+(\.[0-9]+)?$"
CURRENCY_CODE = r"^[A-Z]{3}$"  # the contract's CurrencyCode
MAX_DIGITS = 38  # what a DynamoDB number holds; amounts are stored as strings but stay in that range
# `unique_reference_id` is part of a partition key (2,048 bytes at most with the customer id).
MAX_REFERENCE = 256
EXPANDS = ("real_time_usage",)
STATUS_OPS = ("eq", "oeq", "neq")


def _decimal(value: str) -> str:
    if len(Decimal(value).as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"must have at most {MAX_DIGITS} significant digits")
    return value


def _currency(value: str) -> str:
    try:
        currency_precision(value)
    except InvalidInput as exc:  # re-raised for pydantic, so the error names this field's path
        raise ValueError(exc.fields[0].reason) from None
    return value


def _json_number(value: Any) -> Decimal:
    """A JSON number (the contract's `number`), exactly: neither a string nor a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("float_type", "Input should be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("float_type", "Input should be a finite number")
    return Decimal(str(value))


def _instant(value: datetime) -> datetime:
    if problem := instant_problem(value):
        raise ValueError(problem)
    return value


Name = Annotated[str, Field(min_length=1, max_length=256)]
Description = Annotated[str | None, Field(default=None, max_length=1024)]
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]
Numeric = Annotated[str, Field(pattern=DECIMAL), AfterValidator(_decimal)]
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=CURRENCY_CODE), AfterValidator(_currency)]
Instant = Annotated[Rfc3339, AfterValidator(_instant)]
Ulid = Annotated[str, Field(pattern=ULID_PATTERN.pattern)]
Percentage = Annotated[Decimal, BeforeValidator(_json_number), Field(ge=0, le=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = frozenset()  # no charge field is nullable: `null` is refused


class PeriodIn(_Strict):
    from_: Instant = Field(alias="from")
    to: Instant

    @property
    def period(self) -> Period:
        return Period(self.from_, self.to)


class _Code(_Strict):
    code: Annotated[str, Field(pattern=r"^txcd_\d{8}$")]


class _ExternalCode(_Strict):
    code: Annotated[str, Field(max_length=64)]


class _TaxCodeRef(_Strict):
    id: Ulid


class TaxConfigIn(_Strict):
    behavior: TaxBehavior | None = None
    stripe: _Code | None = None
    external_invoicing: _ExternalCode | None = None
    tax_code_id: Ulid | None = None
    tax_code: _TaxCodeRef | None = None

    @property
    def code_id(self) -> str | None:
        """`tax_code` wins over the deprecated `tax_code_id` (the contract's precedence)."""
        return self.tax_code.id if self.tax_code is not None else self.tax_code_id


class ProrationIn(_Strict):
    mode: ProrationMode


class MoneyIn(_Strict):
    amount: Numeric
    currency: Currency


class FlatDiscountsIn(_Strict):
    percentage: Percentage | None = None


class UsageDiscountsIn(_Strict):
    percentage: Percentage | None = None
    usage: Numeric | None = None


class _Common(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    currency: Currency
    invoice_at: Instant
    service_period: PeriodIn
    full_service_period: PeriodIn | None = None
    billing_period: PeriodIn | None = None
    unique_reference_id: Annotated[str, Field(min_length=1, max_length=MAX_REFERENCE)] | None = None
    settlement_mode: SettlementMode
    tax_config: TaxConfigIn | None = None


class FlatFeeIn(_Common):
    type: Literal["flat_fee"]
    payment_term: PaymentTerm
    discounts: FlatDiscountsIn | None = None
    feature_key: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    proration_configuration: ProrationIn
    amount_before_proration: MoneyIn


class UsageBasedIn(_Common):
    type: Literal["usage_based"]
    discounts: UsageDiscountsIn | None = None
    feature_key: Annotated[str, Field(min_length=1, max_length=64)]
    price: dict[str, Any]  # the catalog parses it (its one-of names the branch's fields)


@dataclass(frozen=True)
class CreateCharge:
    """A validated create request: the body's model, its parsed price and periods, its fingerprint."""

    body: FlatFeeIn | UsageBasedIn
    price: Price
    service_period: Period
    full_service_period: Period
    billing_period: Period
    fingerprint: str  # sha256 of the body's canonical JSON: a reused unique_reference_id compares it

    @property
    def type(self) -> ChargeType:
        return ChargeType(self.body.type)


_MODELS: dict[str, type[FlatFeeIn] | type[UsageBasedIn]] = {
    "flat_fee": FlatFeeIn,
    "usage_based": UsageBasedIn,
}


def _bad(field: str, reason: str, rule: str = "invalid") -> BadRequest:
    return BadRequest.field(field, reason, rule)


def _non_empty(period: Period, field: str) -> None:
    if period.end <= period.start:
        raise _bad(f"{field}.to", f"must be after {field}.from")


def create_charge(body: Any) -> CreateCharge:
    if not isinstance(body, dict):
        raise _bad("body", "must be a JSON object", "is_object")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in _MODELS:  # a list or object is no type (nor hashable)
        param = {
            "field": "type",
            "reason": "must be one of flat_fee, usage_based",
            "rule": "enum" if kind is not None else "required",
            "source": "body",
            "choices": list(_MODELS),
        }
        raise BadRequest(f"Invalid [type]: {param['reason']}", [param])
    req = validate_model(_MODELS[kind], body)
    service = req.service_period.period
    _non_empty(service, "service_period")
    full = req.full_service_period.period if req.full_service_period else service
    _non_empty(full, "full_service_period")
    if not full.contains(service):
        raise _bad("full_service_period", "must contain service_period")
    billing = req.billing_period.period if req.billing_period else full
    _non_empty(billing, "billing_period")
    if isinstance(req, FlatFeeIn):
        money = req.amount_before_proration
        if money.currency != req.currency:
            raise _bad("amount_before_proration.currency", f"must be the charge's currency {req.currency}")
        if Decimal(money.amount) < 0:
            raise _bad("amount_before_proration.amount", "must not be negative")
        price = Price(PriceType.FLAT, amount=Decimal(money.amount))
    else:
        price = catalog_requests.price(req.price, "price")
        if req.discounts is not None and req.discounts.usage is not None and Decimal(req.discounts.usage) < 0:
            raise _bad("discounts.usage", "must not be negative")
        if req.invoice_at < service.end:
            # Usage is rated once, at invoicing: earlier, the rest of the period would never be billed.
            raise _bad("invoice_at", "must not be before service_period.to for a usage-based charge")
    fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return CreateCharge(req, price, service, full, billing, fingerprint)


def customer_id(value: str) -> str:
    """Charge endpoints take the customer's ULID only (the contract's path parameter is a ULID)."""
    if not is_ulid(value):
        raise BadRequest.field("customerId", "must be a ULID", "matches_regex", "path")
    return value


# -- queries -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListChargesQuery:
    page: Page
    sort: str | None
    status: StringFilter | None
    real_time_usage: bool


def _choice(field: str, reason: str, choices: tuple[str, ...]) -> BadRequest:
    param = {"field": field, "reason": reason, "rule": "enum", "source": "query", "choices": list(choices)}
    return BadRequest(f"Invalid [{field}]: {reason}", [param])


def _status_filter(spec: Any) -> StringFilter:
    """`filter[status]` (ListChargesParamsFilter): exactly one of eq, oeq, neq, with known statuses."""
    if isinstance(spec, str):
        spec = {"eq": spec}
    if len(spec) != 1:
        raise BadRequest.field("filter[status]", "use exactly one operator", "invalid", "query")
    op, value = next(iter(spec.items()))
    if op not in STATUS_OPS or not isinstance(value, str):
        raise _choice(
            f"filter[status][{op}]", f"unknown operator; use one of {', '.join(STATUS_OPS)}", STATUS_OPS
        )
    statuses = tuple(s.value for s in ChargeStatus)
    for v in value.split(",") if op == "oeq" else [value]:
        if v not in statuses:
            raise _choice(f"filter[status][{op}]", f"must be one of {', '.join(statuses)}", statuses)
    return StringFilter("status", op, value)


def _expand(params: dict[str, str]) -> bool:
    """`expand=real_time_usage` (form style; `expand[]=` as product.md's how-to writes it)."""
    wanted: list[str] = []
    for name in ("expand", "expand[]"):
        if name in params:
            wanted += [v for v in params[name].split(",") if v != ""]
    for value in wanted:
        if value not in EXPANDS:
            raise _choice("expand", f"must be one of {', '.join(EXPANDS)}", EXPANDS)
    return "real_time_usage" in wanted


def list_charges(params: dict[str, str] | None) -> ListChargesQuery:
    params = params or {}
    for name in params:
        if name.split("[", 1)[0] not in ("page", "sort", "filter", "expand"):
            raise BadRequest.field(name, "is not a parameter of this operation", "unknown_property", "query")
        if name.startswith("expand") and name not in ("expand", "expand[]"):
            raise BadRequest.field(name, "use expand=real_time_usage", "unknown_property", "query")
    page = page_params(params)
    spec = nested(params, "filter")
    unknown = set(spec) - {"status"}
    if unknown:
        raise BadRequest.field(
            f"filter[{sorted(unknown)[0]}]", "unknown filter; supported: status", "unknown_property", "query"
        )
    status = _status_filter(spec["status"]) if "status" in spec else None
    # `sort` names are checked where the items are sorted (shared.core.listing.sort_items).
    return ListChargesQuery(page, params.get("sort"), status, _expand(params))
