"""Deleting a customer ends its entitlements: a use case spanning two domains, kept out of routes.

Idempotent: a retried delete (the first one crashed between the two steps) finds the customer
already deleted, still ends whatever entitlements are left, and answers 404 like any delete of a
deleted customer.
"""

from __future__ import annotations

from typing import Protocol

from shared.core.errors import NotFound
from shared.customers.service import CustomerService


class CustomerEntitlements(Protocol):
    """The entitlements port (EntitlementService): entitlements depend on customers, not back."""

    def end_for_customer(self, customer_id: str) -> object: ...


class CustomerDeletion:
    def __init__(self, customers: CustomerService, entitlements: CustomerEntitlements) -> None:
        self.customers = customers
        self.entitlements = entitlements

    def delete(self, customer_ref: str) -> None:
        customer = self.customers.get(customer_ref, include_deleted=True)
        if customer.deleted_at is not None:
            self.entitlements.end_for_customer(customer.id)  # finish an interrupted delete
            raise NotFound(f"Customer [{customer_ref}] not found")
        self.customers.delete(customer.id)
        self.entitlements.end_for_customer(customer.id)
