"""Typed inputs of the customer endpoints: the contract's bodies (`CreateCustomerRequest`,
`UpsertCustomerRequest`) and the list query. The only customers module that knows the wire names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.api.params import Page, StringFilter, nested, page_params, string_filters, ulid_filter
from shared.api.validation import validate_model
from shared.core.labels import check_labels
from shared.customers.models import MAX_SUBJECT_KEY_LENGTH, MAX_SUBJECT_KEYS

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
STRING_FILTERS = ("key", "name", "primary_email", "usage_attribution_subject_key", "plan_key")

Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]


def _unique(values: list[str]) -> list[str]:
    """Drop repeated subject keys, keeping the first occurrence's order."""
    return list(dict.fromkeys(values))


SubjectKeys = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT_KEY_LENGTH)]],
    Field(max_length=MAX_SUBJECT_KEYS),
    AfterValidator(_unique),
]


class UsageAttribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_keys: SubjectKeys


class BillingAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None


class UpsertCustomerRequest(BaseModel):
    """PUT body: a full replacement of the mutable fields (omitted optional fields are cleared)."""

    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = frozenset()  # no field takes null (see validate_model)

    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=1024)
    labels: Labels = None
    usage_attribution: UsageAttribution | None = None
    primary_email: str | None = Field(default=None, max_length=320, pattern=_EMAIL.pattern)
    # ISO 4217 (or a custom code): three upper-case letters.
    currency: str | None = Field(default=None, min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    billing_address: BillingAddress | None = None


class CreateCustomerRequest(UpsertCustomerRequest):
    key: str = Field(min_length=1, max_length=256)
    # Beyond the contract (docs/contract-notes.md): the test clock this customer lives on, set at
    # creation only (PUT does not take it), as Stripe's customer `test_clock`.
    test_clock_id: str | None = Field(default=None, pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


@dataclass(frozen=True)
class ListCustomersQuery:
    page: Page
    filters: list[StringFilter]
    sort: str | None


def create_customer(body: Any) -> CreateCustomerRequest:
    return validate_model(CreateCustomerRequest, body)


def upsert_customer(body: Any) -> UpsertCustomerRequest:
    return validate_model(UpsertCustomerRequest, body)


def list_customers(params: dict[str, str] | None) -> ListCustomersQuery:
    page = page_params(params)
    params = params or {}
    profile = nested(params, "filter").get("billing_profile_id")
    rest = {k: v for k, v in params.items() if not k.startswith("filter[billing_profile_id]")}
    filters = string_filters(rest, STRING_FILTERS)
    if profile is not None:
        filters.append(ulid_filter("billing_profile_id", profile))
    return ListCustomersQuery(page, filters, params.get("sort"))
