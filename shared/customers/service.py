"""Customer CRUD rules: immutable key, one live customer per subject, full-replacement PUT, soft delete.

A customer is addressed by its id (ULID) or its key. Every subject that attributes usage to a live
customer (its `usage_attribution.subject_keys`, its key, its id) is claimed by that customer alone:
a duplicate key, a subject key attributed elsewhere, or a key equal to another customer's subject is a
409 naming the other customer (`conflicting_entity_id`). A soft-deleted customer is still readable by
id (with `deleted_at`), but no longer listed, addressable by key, attributable, or updatable (410).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Protocol

from shared.core.errors import Conflict, Gone, InvalidInput, NotFound
from shared.core.ids import is_ulid, new_id
from shared.core.listing import Listed, StringFilter, sort_items
from shared.core.timeutil import Clock
from shared.customers.models import Customer
from shared.customers.repository import CustomerRepository, TransactionConflict
from shared.customers.requests import CreateCustomerRequest, ListCustomersQuery, UpsertCustomerRequest

SORTS = {
    "id": lambda c: c.id,
    "name": lambda c: (c.name, c.id),
    "created_at": lambda c: (c.created_at, c.id),
}


def _matches(customer: Customer, flt: StringFilter) -> bool:
    if flt.field == "usage_attribution_subject_key":
        keys = customer.subject_keys
        # Any subject key matches; `neq` means none of them equals the value.
        return all(flt.matches(k) for k in keys) if flt.op == "neq" else any(flt.matches(k) for k in keys)
    if flt.field in ("plan_key", "billing_profile_id"):
        return flt.matches(None)  # no subscriptions or billing profiles yet: nothing set
    return flt.matches(getattr(customer, flt.field))


class ClockView(Protocol):
    @property
    def frozen_time(self) -> datetime: ...
    @property
    def status(self) -> str: ...  # "ready" or "advancing"


class ClockBinding(Protocol):
    """The test clocks a customer can be created on (shared/testclocks/repository.py)."""

    def get(self, clock_id: str) -> ClockView | None: ...
    def bind_items(self, clock_id: str, customer_id: str) -> list[dict[str, Any]]: ...
    def unbind_items(self, clock_id: str, customer_id: str) -> list[dict[str, Any]]: ...


class CustomerService:
    def __init__(
        self, repo: CustomerRepository, clock: Clock | None = None, clocks: ClockBinding | None = None
    ) -> None:
        self.repo = repo
        self.clock = clock or Clock()
        self.clocks = clocks

    # -- conflicts -------------------------------------------------------------------------------
    def _check_claims(self, customer: Customer) -> None:
        """Raise a 409 naming the other live customer holding any subject this customer would claim."""
        taken = {s: c for s, c in self.repo.claims(customer.subjects).items() if c.customer_id != customer.id}
        if not taken:
            return
        if customer.key in taken:
            other = taken[customer.key]
            if other.customer_key == customer.key:
                detail = f"A customer with key [{customer.key}] already exists"
            else:
                detail = (
                    f"Customer key [{customer.key}] is a usage attribution subject of customer "
                    f"[{other.customer_id}]"
                )
            raise Conflict(detail, conflicting_entity_id=other.customer_id)
        subject, other = next((s, taken[s]) for s in customer.subjects if s in taken)
        if other.customer_key == subject:
            detail = f"Subject key [{subject}] is the key of customer [{other.customer_id}]"
        elif other.customer_id == subject:
            detail = f"Subject key [{subject}] is the id of customer [{other.customer_id}]"
        else:
            detail = f"Subject key [{subject}] is already attributed to customer [{other.customer_id}]"
        raise Conflict(detail, conflicting_entity_id=other.customer_id)

    def _lost_race(self, customer: Customer) -> Conflict:
        """After a cancelled transaction: name the claim we lost, else report a concurrent change."""
        try:
            self._check_claims(customer)
        except Conflict as err:
            return err
        return Conflict(
            f"Customer [{customer.id}] was modified concurrently; retry", conflicting_entity_id=customer.id
        )

    # -- lookups ---------------------------------------------------------------------------------
    def find(self, id_or_key: str) -> Customer | None:
        """By id, else by key (live customers only); a deleted customer only by its id."""
        by_id = self.repo.get(id_or_key) if is_ulid(id_or_key) else None
        if by_id is not None and by_id.deleted_at is None:
            return by_id
        customer_id = self.repo.id_for_key(id_or_key)
        return (self.repo.get(customer_id) if customer_id else None) or by_id

    def get(self, id_or_key: str, include_deleted: bool = False) -> Customer:
        customer = self.find(id_or_key)
        if customer is None or (customer.deleted_at is not None and not include_deleted):
            raise NotFound(f"Customer [{id_or_key}] not found")
        return customer

    # -- operations ------------------------------------------------------------------------------
    def create(self, req: CreateCustomerRequest) -> Customer:
        now = self.clock.now()
        extra: list[dict[str, Any]] = []
        if req.test_clock_id is not None:
            clock = self.clocks.get(req.test_clock_id) if self.clocks is not None else None
            if clock is None:
                raise InvalidInput.field("test_clock_id", f"test clock [{req.test_clock_id}] not found")
            if clock.status != "ready":  # (the running advance has its customer list already)
                raise Conflict(
                    f"Test clock [{req.test_clock_id}] is advancing: create the customer once it is ready",
                    conflicting_entity_id=req.test_clock_id,
                )
            now = clock.frozen_time  # created at the clock's time, as Stripe's test-clock customers
        customer = Customer(
            id=new_id(),
            key=req.key,
            name=req.name,
            description=req.description,
            labels=req.labels,
            subject_keys=list(req.usage_attribution.subject_keys) if req.usage_attribution else [],
            primary_email=req.primary_email,
            currency=req.currency,
            billing_address=req.billing_address.model_dump(exclude_none=True)
            if req.billing_address
            else None,
            created_at=now,
            updated_at=now,
            test_clock_id=req.test_clock_id,
        )
        if customer.test_clock_id is not None and self.clocks is not None:
            extra = self.clocks.bind_items(customer.test_clock_id, customer.id)
        self._check_claims(customer)
        try:
            self.repo.create(customer, extra)
        except TransactionConflict:
            raise self._lost_race(customer) from None
        return customer

    def list(self, query: ListCustomersQuery) -> Listed[Customer]:
        customers = [c for c in self.repo.list_live() if all(_matches(c, f) for f in query.filters)]
        return Listed.of(query.page, sort_items(customers, query.sort, SORTS, "name"))

    def update(self, id_or_key: str, req: UpsertCustomerRequest) -> Customer:
        """PUT replaces every mutable field: omitted optional fields (and subject keys) are cleared."""
        current = self.get(id_or_key, include_deleted=True)
        if current.deleted_at is not None:
            raise Gone(f"Customer [{id_or_key}] has been deleted")
        updated = dataclasses.replace(
            current,
            name=req.name,
            description=req.description,
            labels=req.labels,
            subject_keys=list(req.usage_attribution.subject_keys) if req.usage_attribution else [],
            primary_email=req.primary_email,
            currency=req.currency,
            billing_address=req.billing_address.model_dump(exclude_none=True)
            if req.billing_address
            else None,
            updated_at=self.clock.now(),
            version=current.version + 1,
        )
        self._check_claims(updated)
        try:
            self.repo.update(current, updated)
        except TransactionConflict:
            raise self._lost_race(updated) from None
        return updated

    def delete(self, id_or_key: str) -> None:
        current = self.get(id_or_key)
        now = self.clock.now()
        deleted = dataclasses.replace(current, deleted_at=now, updated_at=now, version=current.version + 1)
        extra = (
            self.clocks.unbind_items(current.test_clock_id, current.id)
            if current.test_clock_id is not None and self.clocks is not None
            else []
        )
        try:
            self.repo.soft_delete(current, deleted, extra)
        except TransactionConflict:
            raise Conflict(
                f"Customer [{current.id}] was modified concurrently; retry", conflicting_entity_id=current.id
            ) from None
