"""Subscription requests: the contract's bodies (pydantic) and the list query, the only place that knows
wire names. Beyond the contract, create takes `timing` like change and cancel do (engine-rules §2.8:
`immediate`, `next_billing_cycle` or a date-time; docs/contract-notes.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt
from pydantic_core import PydanticCustomError

from shared.api.params import Page, StringFilter, nested, page_params, sort_items, string_filters, ulid_filter
from shared.api.problem import BadRequest
from shared.api.validation import Rfc3339, validate_model
from shared.core.errors import InvalidInput
from shared.core.labels import check_labels
from shared.core.timeutil import EARLIEST_INSTANT, LATEST_INSTANT, parse_rfc3339
from shared.subscriptions.models import Status, Subscription, Timing, TimingSpec

ULID = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]


def _in_range(value: datetime) -> datetime:
    """Billing instants stay inside the engine's range (docs/architecture.md "Accepted time range"):
    periods and phases are computed past them, and year 9999 has no next period."""
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise PydanticCustomError(
            "datetime_parsing", "must be between 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z"
        )
    return value


def _timing(value: Any) -> Any:
    if isinstance(value, str) and value in Timing.__members__.values():
        return Timing(value)
    if isinstance(value, str) and value[:1].isdigit():
        try:
            return _in_range(parse_rfc3339(value))
        except ValueError as exc:
            raise PydanticCustomError("datetime_parsing", str(exc)) from None
    raise PydanticCustomError(
        "enum",
        "must be immediate, next_billing_cycle or an RFC 3339 date-time",
        {"expected": "'immediate' or 'next_billing_cycle'"},
    )


TimingField = Annotated[Timing | datetime, BeforeValidator(_timing)]


class CustomerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ULID)
    key: str | None = Field(default=None, min_length=1, max_length=256)


class PlanRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=ULID)
    key: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
    version: StrictInt | None = Field(default=None, ge=1)


class CreateSubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: CustomerRef
    plan: PlanRef
    billing_anchor: Annotated[Rfc3339, AfterValidator(_in_range)] | None = None
    labels: Labels = None
    settlement_mode: Literal["credit_then_invoice", "credit_only"] | None = None
    timing: TimingField = Timing.IMMEDIATE  # beyond the contract (see the module docstring)


class ChangeSubscriptionRequest(CreateSubscriptionRequest):
    timing: TimingField  # required here


class CancelSubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timing: TimingField = Timing.IMMEDIATE


def _refs(req: CreateSubscriptionRequest) -> None:
    if req.customer.id is None and req.customer.key is None:
        raise InvalidInput.field("customer.id", "customer id or key is required", "required")
    if req.plan.id is None and req.plan.key is None:
        raise InvalidInput.field("plan.key", "plan id or key is required", "required")


def create_subscription(body: Any) -> CreateSubscriptionRequest:
    req = validate_model(CreateSubscriptionRequest, body)
    _refs(req)
    return req


def change_subscription(body: Any) -> ChangeSubscriptionRequest:
    req = validate_model(ChangeSubscriptionRequest, body)
    _refs(req)
    return req


def cancel_subscription(body: Any | None) -> TimingSpec:
    return validate_model(CancelSubscriptionRequest, body if body is not None else {}).timing


def path_id(value: str, name: str = "subscriptionId") -> str:
    if not re.match(ULID, value):
        raise InvalidInput.field(name, "must be a ULID", "matches_regex", "path")
    return value


# -- list -----------------------------------------------------------------------------------------
SORTS: dict[str, Any] = {
    "id": lambda s: s.id,
    "active_from": lambda s: (s.active_from, s.id),
    "active_to": lambda s: (s.active_to is None, s.active_to or s.active_from, s.id),
}
EXACT_OPS = ("eq", "oeq", "neq")


@dataclass(frozen=True)
class ListSubscriptionsQuery:
    page: Page
    filters: tuple[StringFilter, ...]
    sort: str | None

    def matches(self, sub: Subscription, now: datetime) -> bool:
        values = {
            "id": sub.id,
            "customer_id": sub.customer_id,
            "plan_id": sub.plan_id,
            "plan_key": sub.plan_key,
            "status": sub.status(now).value,
        }
        return all(f.matches(values[f.field]) for f in self.filters)

    def order(self, subs: list[Subscription]) -> list[Subscription]:
        return sort_items(subs, self.sort, SORTS, "active_from")


def list_subscriptions(params: dict[str, str]) -> ListSubscriptionsQuery:
    """`filter[id|customer_id|plan_id]` (ULID filters), `filter[status|plan_key]` (eq / oeq / neq)."""
    page = page_params(params)
    spec = nested(params, "filter")
    filters: list[StringFilter] = []
    for name in ("id", "customer_id", "plan_id"):
        if name in spec:
            filters.append(ulid_filter(name, spec.pop(name)))
    rest = {
        k: v
        for k, v in params.items()
        if not k.startswith(("filter[id]", "filter[customer_id]", "filter[plan_id]"))
    }
    for f in string_filters(rest, ("status", "plan_key")):
        if f.op not in EXACT_OPS:
            raise BadRequest.field(
                f"filter[{f.field}][{f.op}]", "use one of eq, oeq, neq", "invalid", "query"
            )
        if f.field == "status":
            bad = [v for v in f.value.split(",") if v not in Status.__members__.values()]
            if bad:
                raise BadRequest.field(
                    f"filter[status][{f.op}]", f"unknown status [{bad[0]}]", "invalid", "query"
                )
        filters.append(f)
    sort_items([], params.get("sort"), SORTS, "active_from")  # validates `sort` before any read
    return ListSubscriptionsQuery(page, tuple(filters), params.get("sort"))


# -- add-ons (create and update are beyond the contract, in the style of engine-rules §2.8) ---------
class AddonRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ULID)


class CreateSubscriptionAddonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    addon: AddonRef
    quantity: StrictInt = Field(ge=1)
    timing: TimingField = Timing.IMMEDIATE
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    labels: Labels = None


class UpdateSubscriptionAddonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: StrictInt = Field(ge=0)  # 0 removes the add-on from `timing` on
    timing: TimingField = Timing.IMMEDIATE


def create_subscription_addon(body: Any) -> CreateSubscriptionAddonRequest:
    return validate_model(CreateSubscriptionAddonRequest, body)


def update_subscription_addon(body: Any) -> UpdateSubscriptionAddonRequest:
    return validate_model(UpdateSubscriptionAddonRequest, body)


ADDON_SORTS: dict[str, Any] = {
    "id": lambda a: a.id,
    "created_at": lambda a: (a.created_at, a.id),
    "updated_at": lambda a: (a.updated_at, a.id),
}


@dataclass(frozen=True)
class ListSubscriptionAddonsQuery:
    page: Page
    sort: str | None

    def order(self, addons: list[Any]) -> list[Any]:
        return sort_items(addons, self.sort, ADDON_SORTS, "created_at")


def list_subscription_addons(params: dict[str, str]) -> ListSubscriptionAddonsQuery:
    page = page_params(params)
    sort_items([], params.get("sort"), ADDON_SORTS, "created_at")  # validates `sort` before any read
    return ListSubscriptionAddonsQuery(page, params.get("sort"))
