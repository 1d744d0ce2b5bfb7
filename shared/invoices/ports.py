"""What the invoice service needs from the rest of Meterline, as ports that `shared/bootstrap.py`
fills: where billables come from, how usage is measured, credits, billing settings, customers,
documents, the domain event publisher, who books issued lines, and the invoicing app (Stripe). Tests
pass fakes of the same shape."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from shared.core.errors import DomainError
from shared.invoices.billables import Billable
from shared.invoices.models import CustomerSnapshot, ExternalIds, Invoice, ProfileSnapshot, ValidationIssue
from shared.rating.models import Period


class BillableSource(Protocol):
    """A producer of billables (subscriptions, charges).

    `billables(customer_id, until)` returns every billable of the customer whose billing period
    starts at or before `until`: so up to the end of the aligned billing period containing `until`
    (the sync horizon of engine-rules §2.8). The same key always names the same item; a billable
    that is no longer returned is removed from the gathering invoice (unless already invoiced).
    `customers_to_bill(now)`: the customers whose billables at `now` may differ from what their last
    sync stored (the scheduled run syncs them; customers with pending lines are found from the
    invoices' own due index). A source that cannot tell lists every customer it may bill."""

    def billables(self, customer_id: str, until: datetime) -> list[Billable]: ...

    def customers_to_bill(self, now: datetime) -> Iterable[str]: ...


@runtime_checkable
class SyncIndexed(Protocol):
    """A source with a sync index (subscriptions): `customers_to_bill(now)` lists only the customers
    whose billables may differ from what their last sync stored, and `synced(customer_id, now)` is
    told once the gathering invoice holds what `billables(customer_id, now)` returned (it moves the
    customer to when its billables next change). Called after the gathering write, so a crash in
    between leaves the customer due: the re-run syncs again (writing nothing) and marks it."""

    def synced(self, customer_id: str, now: datetime) -> None: ...


@runtime_checkable
class Sweepable(Protocol):
    """A source that can also list every customer it may bill (slowly): invoicing's full sweep visits
    them all once a day, the fallback for what no index sees (see `InvoiceService.sweep`)."""

    def every_customer(self, now: datetime) -> Iterable[str]: ...


class UsageMeter(Protocol):
    """The metered quantity of a feature for a customer over [period.start, period.end): the feature's
    meter with its filters, over every subject attributed to the customer (minute resolution). One
    call per invoice: (feature key, period) asks in, a quantity or the problem (an unknown or
    meterless feature) out, in order."""

    def quantities(
        self, customer_id: str, asks: Sequence[tuple[str, Period]]
    ) -> list[Decimal | DomainError]: ...


class Credits(Protocol):
    """`shared.credits.service.CreditService.apply` (exactly once per idempotency key), plus what
    credits the customer ever had in a currency (`scopes`): whether any block is unrestricted, and
    the features restricted blocks serve. Grants are never removed, so the answer only grows: a
    re-run after a crash applies at least where the first run did (and gets its answers back)."""

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
    ) -> Decimal: ...

    def scopes(self, customer_id: str, currency: str) -> tuple[bool, frozenset[str]]: ...


class BillingSettings(Protocol):
    """The customer's effective billing profile with its apps, as the invoice snapshots it."""

    def effective(self, customer_id: str) -> ProfileSnapshot: ...

    def forget(self) -> None:
        """Drop what `effective` remembered: the service calls it as each customer's run starts, so
        one run reads a customer's profile once and the next run reads it afresh."""
        ...


class CustomerDirectory(Protocol):
    """The customer as the invoice snapshots it; NotFound for an unknown or deleted one."""

    def snapshot(self, customer_id: str) -> CustomerSnapshot: ...

    def resolve(self, id_or_key: str) -> str:
        """The customer's id (NotFound otherwise)."""
        ...


class Documents(Protocol):
    """The invoice documents (PDF and JSON in S3). `put` is idempotent (same invoice, same keys and
    bytes); `links` gives presigned URLs for an issued invoice's documents."""

    def put(self, invoice: dict[str, Any]) -> None: ...

    def links(self, invoice: dict[str, Any], now: datetime) -> dict[str, Any]: ...


class Publisher(Protocol):
    """`shared.aws.publisher.DomainPublisher`: consumers dedupe on the event ids."""

    def publish_many(self, events: Sequence[tuple[str, dict[str, Any], datetime, str]]) -> None:
        """Each (type, data, time, id) as one event, batched; raises unless every one went out."""
        ...


class Bookings(Protocol):
    """Told when an invoice is `issued` (its amounts are final: after credits), `paid` or `voided`, so
    the producers of its lines book, settle or un-book them (charges: `ChargeBillables.moved`).

    Called from the invoice's outbox, before its notices are published: the transition is stored
    first, and the outbox is cleared only after this returns, so a crash in between calls it again
    with the same invoice, status and line ids. It must therefore be idempotent per (line, status),
    and ignore statuses and lines that are not its own."""

    def moved(self, invoice: Invoice, status: str, at: datetime) -> None: ...


class InvoicingRejected(Exception):
    """The invoicing app refused the invoice; `message` is its reason, `field` what it names. The sync
    failed (`draft.sync_failed` / `issuing.sync_failed`) until someone fixes it and retries.
    `synced`: what the app created before it refused (stored, so the retry updates it)."""

    def __init__(self, message: str, field: str | None = None, synced: ExternalIds | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.synced = synced


class InvoicingUnavailable(Exception):
    """The invoicing app did not answer (network, rate limit, its own 5xx): nothing is decided, the
    invoice stays where it is and the next scheduled run repeats the same requests."""


class InvoicingApp(Protocol):
    """The app that invoices and collects outside Meterline (Stripe: `stripe_invoicing.py`).

    Every call is idempotent: a repeat after a crash (same invoice, same stored state) creates
    nothing twice. Each raises `InvoicingRejected` or `InvoicingUnavailable` on failure.
    - `validate(invoice)`: issues that hold the draft (critical: `draft.invalid`), e.g. a customer
      the app cannot bill;
    - `sync_draft(invoice)`: create or update the app's draft invoice and its items from the lines;
    - `finalize(invoice)`: bring the items to the issued amounts (credits) and finalize it: the app
      now collects it, and reports the payment through its webhook;
    - `void(invoice)`: void the app's finalized invoice; `delete_draft(invoice)`: delete its draft.
    """

    def validate(self, invoice: Invoice) -> list[ValidationIssue]: ...

    def sync_draft(self, invoice: Invoice) -> ExternalIds: ...

    def finalize(self, invoice: Invoice) -> ExternalIds: ...

    def void(self, invoice: Invoice) -> None: ...

    def delete_draft(self, invoice: Invoice) -> None: ...
