"""The invoice ports on Meterline's own services (bootstrap builds these; tests use fakes)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.billing.models import Address, App, Profile
from shared.billing.service import AppService, CustomerBillingService
from shared.core.timeutil import Clock
from shared.credits.repository import CreditRepository
from shared.credits.service import CreditService
from shared.customers.service import CustomerService
from shared.invoices.documents import DocumentStore, document_keys
from shared.invoices.models import AppSnapshot, CustomerSnapshot, ProfileSnapshot


class CreditsPort:
    def __init__(self, service: CreditService, repo: CreditRepository) -> None:
        self.service = service
        self.repo = repo

    def apply(
        self,
        customer_id: str,
        currency: str,
        amount: Decimal,
        at: datetime,
        idempotency_key: str,
        *,
        feature_key: str | None = None,
        name: str = "Invoice",
    ) -> Decimal:
        return self.service.apply(
            customer_id, currency, amount, at, idempotency_key, feature_key=feature_key, name=name
        )

    def scopes(self, customer_id: str, currency: str) -> tuple[bool, frozenset[str]]:
        """Grants (voided ones too) and positive adjustments (unrestricted) are never removed."""
        state = self.repo.ledger(customer_id)
        grants = [g for g in state.grants if g.currency == currency]
        unrestricted = any(not g.features for g in grants) or any(
            m.currency == currency and m.amount > 0 for m in state.movements
        )
        return unrestricted, frozenset(f for g in grants for f in g.features)


class BillingPort:
    def __init__(self, customer_billing: CustomerBillingService, apps: AppService) -> None:
        self.customer_billing = customer_billing
        self.apps = apps
        self._apps: dict[str, App] = {}  # installed apps never change type or hooks: per process
        # Per customer run (`forget()` as the service's `sync` starts): one run asks for a customer's
        # profile twice (the subscription source's end mode, the invoice snapshot).
        self._effective: dict[str, Profile] = {}

    def forget(self) -> None:
        self._effective.clear()

    def effective_profile(self, customer_id: str) -> Profile:
        found = self._effective.get(customer_id)
        if found is None:
            found = self._effective[customer_id] = self.customer_billing.effective_profile(customer_id)
        return found

    def _app(self, app_id: str) -> App:
        if app_id not in self._apps:
            self._apps[app_id] = self.apps.get(app_id)
        return self._apps[app_id]

    def effective(self, customer_id: str) -> ProfileSnapshot:
        profile = self.effective_profile(customer_id)
        invoicing = self._app(profile.apps.invoicing)
        payment = self._app(profile.apps.payment)
        return ProfileSnapshot(
            profile.id,
            profile.name,
            profile.supplier,
            profile.workflow,
            AppSnapshot(
                invoicing.id,
                invoicing.type,
                payment.type,
                invoicing.enable_draft_sync_hook,
                invoicing.enable_issuing_sync_hook,
            ),
        )


class CustomersPort:
    def __init__(self, customers: CustomerService) -> None:
        self.customers = customers

    def resolve(self, id_or_key: str) -> str:
        return self.customers.get(id_or_key).id

    def snapshot(self, customer_id: str) -> CustomerSnapshot:
        c = self.customers.get(customer_id, include_deleted=True)
        address = Address(**c.billing_address) if c.billing_address else None
        # The customer has no tax id field yet (the contract's customer has none either): None.
        return CustomerSnapshot(c.id, c.key, c.name, c.primary_email, address, None)


class DocumentsPort:
    """The `Documents` port on `shared.invoices.documents.DocumentStore`: the keys follow from the
    invoice itself, and links expire on the wall clock (S3 checks signatures against real time, so a
    customer's test-clock time would give links that are dead or live for years)."""

    def __init__(self, store: DocumentStore, wall: Clock | None = None) -> None:
        self.store = store
        self.wall = wall or Clock()

    def put(self, invoice: dict[str, Any]) -> None:
        self.store.put(invoice)

    def links(self, invoice: dict[str, Any], now: datetime) -> dict[str, Any]:
        del now  # the invoice's now may be a test clock's; links live on the wall clock
        return self.store.links(document_keys(invoice), self.wall.now())
