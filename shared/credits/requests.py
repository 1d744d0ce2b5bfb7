"""Typed inputs of the credit endpoints, parsed from HTTP: the only module that knows the wire names.

Bodies are pydantic models of the contract's schemas (`CreateCreditGrantRequest`,
`CreateCreditAdjustmentRequest`, `UpdateCreditGrantExternalSettlementRequest`); query strings become
dataclasses. Rules that need no lookup are checked here: amounts exact to their currency (ISO 4217),
a positive grant amount and cost basis, a purchase exactly when the grant is funded, a whole-unit
positive `expires_after`. Every problem is a 400 naming the field; nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator

from shared.api.params import StringFilter, nested, page_params, string_filters
from shared.api.problem import BadRequest
from shared.api.validation import Rfc3339, validate_model
from shared.core import durations
from shared.core.ids import ULID_PATTERN, is_ulid
from shared.core.labels import check_labels
from shared.core.timeutil import instant_problem, parse_rfc3339
from shared.credits import ledger
from shared.credits.models import (
    DEFAULT_PRIORITY,
    FundingMethod,
    GrantStatus,
    SettlementStatus,
    TransactionType,
)
from shared.rating.money import currency_precision

DECIMAL = r"^\-?[0-9]+(\.[0-9]+)?$"
KEY = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"
# DynamoDB numbers carry 38 significant digits; amounts are stored as strings but stay in that range.
MAX_DIGITS = 38
MAX_FEATURES = 100
DEFAULT_TX_PAGE = 100
MAX_TX_PAGE = 1000


def _decimal(value: str) -> Decimal:
    number = Decimal(value)
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"must have at most {MAX_DIGITS} significant digits")
    return number


def _currency(value: str) -> str:
    currency_precision(value)  # an unknown code, or one without a minor unit, is refused
    return value


def _instant(value: datetime) -> datetime:
    if problem := instant_problem(value):
        raise ValueError(problem)
    return value


def _duration(value: str) -> str:
    try:
        d = durations.parse_duration(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 duration of whole units (e.g. P1Y, P30D, PT12H)") from None
    if not any((d.years, d.months, d.days, d.hours, d.minutes, d.seconds)):
        raise ValueError("must be a positive duration")
    return value


Name = Annotated[str, Field(min_length=1, max_length=256)]
Description = Annotated[str | None, Field(default=None, max_length=1024)]
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]
Amount = Annotated[str, Field(pattern=DECIMAL), AfterValidator(_decimal)]
CURRENCY_CODE = r"^[A-Z]{3}$"  # the contract's CurrencyCode
Currency = Annotated[str, Field(min_length=3, max_length=3, pattern=CURRENCY_CODE), AfterValidator(_currency)]
FeatureKey = Annotated[str, Field(min_length=1, max_length=64, pattern=KEY)]
Ulid = Annotated[str, Field(pattern=ULID_PATTERN.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = (
        frozenset()
    )  # the contract marks no credit field nullable: `null` is refused


class PurchaseIn(_Strict):
    currency: Currency
    per_unit_cost_basis: Amount = Decimal("1.0")  # type: ignore[assignment]
    availability_policy: Literal["on_creation"] = "on_creation"

    @model_validator(mode="after")
    def _positive(self) -> PurchaseIn:
        if Decimal(self.per_unit_cost_basis) <= 0:
            raise ValueError(
                "per_unit_cost_basis must be greater than 0 (use funding_method none for free credits)"
            )
        return self


class TaxCodeRef(_Strict):
    id: Ulid


class TaxConfigIn(_Strict):
    behavior: Literal["inclusive", "exclusive"] | None = None
    tax_code: TaxCodeRef | None = None


class FiltersIn(_Strict):
    features: Annotated[list[FeatureKey], Field(max_length=MAX_FEATURES)] | None = None


class CreateGrantRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    funding_method: FundingMethod
    currency: Currency
    amount: Amount
    purchase: PurchaseIn | None = None
    tax_config: TaxConfigIn | None = None
    filters: FiltersIn | None = None
    priority: Annotated[StrictInt, Field(ge=1, le=1000)] = DEFAULT_PRIORITY
    effective_at: Annotated[Rfc3339, AfterValidator(_instant)] | None = None
    expires_after: Annotated[str, AfterValidator(_duration)] | None = None
    key: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class CreateAdjustmentRequest(_Strict):
    name: Name
    description: Description = None
    labels: Labels = None
    currency: Currency
    amount: Amount


class SettlementRequest(_Strict):
    status: SettlementStatus


def _field_error(field: str, reason: str, rule: str = "invalid") -> BadRequest:
    return BadRequest.field(field, reason, rule)


def create_grant(body: Any) -> CreateGrantRequest:
    req = validate_model(CreateGrantRequest, body)
    amount = Decimal(req.amount)
    if amount <= 0:
        raise _field_error("amount", "must be greater than 0")
    try:
        ledger.check_amount(amount, req.currency)
    except ValueError as exc:
        raise _field_error("amount", str(exc)) from None
    if req.funding_method is FundingMethod.NONE and req.purchase is not None:
        raise _field_error("purchase", "must be absent when funding_method is none (nothing is purchased)")
    if req.funding_method is not FundingMethod.NONE and req.purchase is None:
        raise _field_error(
            "purchase", f"is required when funding_method is {req.funding_method.value}", "required"
        )
    return req


def create_adjustment(body: Any) -> CreateAdjustmentRequest:
    req = validate_model(CreateAdjustmentRequest, body)
    amount = Decimal(req.amount)
    if amount == 0:
        raise _field_error("amount", "must not be 0")
    try:
        ledger.check_amount(amount, req.currency)
    except ValueError as exc:
        raise _field_error("amount", str(exc)) from None
    return req


def settlement(body: Any) -> SettlementRequest:
    return validate_model(SettlementRequest, body)


def customer_id(value: str) -> str:
    """Credit endpoints take the customer's ULID only (product.md §11: not its key)."""
    if not is_ulid(value):
        raise BadRequest.field("customerId", "must be a ULID", "matches_regex", "path")
    return value


def grant_id(value: str) -> str:
    if not is_ulid(value):
        raise BadRequest.field("creditGrantId", "must be a ULID", "matches_regex", "path")
    return value


# -- queries -------------------------------------------------------------------------------------------
def _only(params: dict[str, str], allowed: set[str]) -> None:
    for name in params:
        root = name.split("[", 1)[0]
        if root not in allowed:
            raise BadRequest.field(name, "is not a parameter of this operation", "unknown_property", "query")


def _plain_filter(spec: Any, field: str, choices: tuple[str, ...] | None = None) -> str:
    name = f"filter[{field}]"
    if not isinstance(spec, str):
        raise BadRequest.field(name, "takes a single value", "is_string", "query")
    if choices is not None and spec not in choices:
        param = {
            "field": name,
            "reason": f"must be one of {', '.join(choices)}",
            "rule": "enum",
            "source": "query",
            "choices": list(choices),
        }
        raise BadRequest(f"Invalid [{name}]: must be one of {', '.join(choices)}", [param])
    return spec


def _currency_filter(spec: Any) -> str:
    """`filter[currency]` is a CurrencyCode in the contract: three upper-case letters."""
    value = _plain_filter(spec, "currency")
    if not re.fullmatch(CURRENCY_CODE, value):
        raise BadRequest.field(
            "filter[currency]", "must be a three-letter ISO 4217 code", "matches_regex", "query"
        )
    return value


def _one_op(filters: list[StringFilter], field: str, ops: tuple[str, ...]) -> StringFilter | None:
    mine = [f for f in filters if f.field == field]
    if len(mine) > 1:
        raise BadRequest.field(f"filter[{field}]", "use exactly one operator", "invalid", "query")
    if mine and mine[0].op not in ops:
        reason = f"unknown operator; use one of {', '.join(ops)}"
        param = {
            "field": f"filter[{field}][{mine[0].op}]",
            "reason": reason,
            "rule": "enum",
            "source": "query",
            "choices": list(ops),
        }
        raise BadRequest(f"Invalid [filter[{field}][{mine[0].op}]]: {reason}", [param])
    return mine[0] if mine else None


@dataclass(frozen=True)
class BalanceQuery:
    timestamp: datetime | None
    currency: StringFilter | None
    feature_key: StringFilter | None


def balance(params: dict[str, str] | None) -> BalanceQuery:
    params = params or {}
    _only(params, {"timestamp", "filter"})
    timestamp = None
    if "timestamp" in params:
        try:
            timestamp = parse_rfc3339(params["timestamp"])
        except ValueError as exc:
            raise BadRequest.field("timestamp", str(exc), "is_date_time", "query") from None
        if problem := instant_problem(timestamp):
            raise BadRequest.field("timestamp", problem, "invalid", "query")
    filters = string_filters(params, ("currency", "feature_key"))
    return BalanceQuery(
        timestamp,
        _one_op(filters, "currency", ("eq", "oeq", "neq")),
        _one_op(filters, "feature_key", ("eq", "oeq", "neq", "contains", "ocontains")),
    )


@dataclass(frozen=True)
class GrantsQuery:
    page: Any
    status: GrantStatus | None
    currency: str | None
    key: StringFilter | None


def list_grants(params: dict[str, str] | None) -> GrantsQuery:
    params = params or {}
    _only(params, {"page", "filter"})
    page = page_params(params)
    spec = nested(params, "filter")
    unknown = set(spec) - {"status", "currency", "key"}
    if unknown:
        raise BadRequest.field(
            f"filter[{sorted(unknown)[0]}]",
            "unknown filter; supported: status, currency, key",
            "unknown_property",
            "query",
        )
    status = spec.get("status")
    status = (
        GrantStatus(_plain_filter(status, "status", tuple(s.value for s in GrantStatus))) if status else None
    )
    currency = _currency_filter(spec["currency"]) if "currency" in spec else None
    key_filters = string_filters({k: v for k, v in params.items() if k.startswith("filter[key]")}, ("key",))
    return GrantsQuery(
        page, status, currency, _one_op(key_filters, "key", ("eq", "oeq", "neq", "contains", "ocontains"))
    )


@dataclass(frozen=True)
class TransactionsQuery:
    size: int
    after: str | None
    before: str | None
    type: TransactionType | None
    currency: str | None
    feature_key: StringFilter | None


def list_transactions(params: dict[str, str] | None) -> TransactionsQuery:
    params = params or {}
    _only(params, {"page", "filter"})
    page = nested(params, "page")
    unknown = set(page) - {"size", "after", "before"}
    if unknown:
        raise BadRequest.field(
            f"page[{sorted(unknown)[0]}]",
            "use page[size], page[after] or page[before]",
            "unknown_property",
            "query",
        )
    for name, value in page.items():
        if not isinstance(value, str):
            raise BadRequest.field(f"page[{name}]", "takes a single value", "is_string", "query")
    size = DEFAULT_TX_PAGE
    if "size" in page:
        try:
            size = int(page["size"])
        except ValueError:
            raise BadRequest.field("page[size]", "must be an integer", "is_integer", "query") from None
        if not 1 <= size <= MAX_TX_PAGE:
            raise BadRequest.field("page[size]", f"must be between 1 and {MAX_TX_PAGE}", "invalid", "query")
    if "after" in page and "before" in page:
        raise BadRequest.field(
            "page[before]", "use page[after] or page[before], not both", "invalid", "query"
        )
    for name in ("after", "before"):
        if name in page and not is_ulid(page[name]):
            raise BadRequest.field(f"page[{name}]", "is not a transaction id", "matches_regex", "query")
    spec = nested(params, "filter")
    unknown = set(spec) - {"type", "currency", "feature_key"}
    if unknown:
        raise BadRequest.field(
            f"filter[{sorted(unknown)[0]}]",
            "unknown filter; supported: type, currency, feature_key",
            "unknown_property",
            "query",
        )
    kind = spec.get("type")
    kind = (
        TransactionType(_plain_filter(kind, "type", tuple(t.value for t in TransactionType)))
        if kind
        else None
    )
    currency = _currency_filter(spec["currency"]) if "currency" in spec else None
    feature_filters = string_filters(
        {k: v for k, v in params.items() if k.startswith("filter[feature_key]")}, ("feature_key",)
    )
    feature = _one_op(feature_filters, "feature_key", ("eq", "oeq", "neq", "contains", "ocontains"))
    return TransactionsQuery(size, page.get("after"), page.get("before"), kind, currency, feature)
