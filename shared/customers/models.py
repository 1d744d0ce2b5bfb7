"""Customer domain model and the contract's request shapes (CreateCustomerRequest, UpsertCustomerRequest)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.core.labels import check_labels
from shared.core.timeutil import format_rfc3339

# Subject claims are written in the same transaction as the customer (DynamoDB caps a transaction at
# 100 items). The worst update replaces every subject key and renames the customer: 1 customer item
# + up to N+2 claims put (subject keys, key, id) + N claims deleted = 2N+3 items; 40 leaves headroom.
MAX_SUBJECT_KEYS = 40
# Subjects are DynamoDB partition keys (`SUBJECT#<subject>`, 2048 bytes at most); the contract's
# ExternalResourceKey is 1-256 characters, and subject keys get the same bound.
MAX_SUBJECT_KEY_LENGTH = 256
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

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


@dataclass
class Customer:
    id: str
    key: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    subject_keys: list[str] = field(default_factory=list)
    primary_email: str | None = None
    currency: str | None = None
    billing_address: dict[str, str] | None = None
    deleted_at: datetime | None = None
    # Optimistic lock: every write is conditional on the version it read.
    version: int = 1
    test_clock_id: str | None = None  # set at creation, never changed

    @property
    def subjects(self) -> list[str]:
        """Every event subject attributed to this customer: its subject keys, its key and its id."""
        return list(dict.fromkeys([*self.subject_keys, self.key, self.id]))

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "usage_attribution": {"subject_keys": list(self.subject_keys)},
            "created_at": format_rfc3339(self.created_at),
            "updated_at": format_rfc3339(self.updated_at),
        }
        if self.description is not None:
            body["description"] = self.description
        if self.labels is not None:
            body["labels"] = self.labels
        if self.primary_email is not None:
            body["primary_email"] = self.primary_email
        if self.currency is not None:
            body["currency"] = self.currency
        if self.billing_address is not None:
            body["billing_address"] = dict(self.billing_address)
        if self.deleted_at is not None:
            body["deleted_at"] = format_rfc3339(self.deleted_at)
        if self.test_clock_id is not None:
            body["test_clock_id"] = self.test_clock_id
        return body
