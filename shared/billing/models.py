"""Billing settings: installed apps, billing profiles and the customer billing override
(engine-rules §2.9, product.md §15, §17, §19).

A profile is the supplier, the workflow that drives invoices, and the apps that tax, invoice and
collect; exactly one profile is the default. A customer follows the default unless its override pins
another profile. Durations are ISO-8601 strings (validated where they are parsed); times are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AppType(StrEnum):
    SANDBOX = "sandbox"
    STRIPE = "stripe"
    EXTERNAL_INVOICING = "external_invoicing"


class AppStatus(StrEnum):
    READY = "ready"
    UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True)
class App:
    """An installed app. Meterline installs the sandbox and external-invoicing apps itself."""

    id: str
    type: AppType
    name: str
    description: str
    status: AppStatus
    created_at: datetime
    updated_at: datetime
    # external_invoicing: pause invoices for the integration's callbacks (off: nothing to wait for)
    enable_draft_sync_hook: bool = False
    enable_issuing_sync_hook: bool = False
    # stripe: the account Stripe reported for the configured key
    account_id: str | None = None
    livemode: bool = False
    masked_api_key: str | None = None
    key_fingerprint: str | None = None  # which configured key installed it (a hash, never the key)


class AlignmentType(StrEnum):
    SUBSCRIPTION = "subscription"
    ANCHORED = "anchored"


class ProrationMode(StrEnum):
    BILL_ACTUAL_PERIOD = "bill_actual_period"
    BILL_FULL_PERIOD = "bill_full_period"


class CollectionMethod(StrEnum):
    CHARGE_AUTOMATICALLY = "charge_automatically"
    SEND_INVOICE = "send_invoice"


class TaxBehavior(StrEnum):
    INCLUSIVE = "inclusive"
    EXCLUSIVE = "exclusive"


@dataclass(frozen=True)
class Alignment:
    """How pending lines are gathered: per subscription period, or at anchored boundaries."""

    type: AlignmentType = AlignmentType.SUBSCRIPTION
    anchor: datetime | None = None  # anchored only
    interval: str | None = None  # anchored only: ISO-8601 duration


@dataclass(frozen=True)
class Workflow:
    """The contract's defaults (engine-rules §2.9 table)."""

    alignment: Alignment = field(default_factory=Alignment)
    collection_interval: str = "PT1H"  # grace for late events before quantities are snapshotted
    auto_advance: bool = True
    draft_period: str = "P0D"
    progressive_billing: bool = True
    proration_mode: ProrationMode = ProrationMode.BILL_ACTUAL_PERIOD
    collection_method: CollectionMethod = CollectionMethod.CHARGE_AUTOMATICALLY
    # Payment terms: issued_at + due_after = due_at. The wire shows it with `send_invoice` only;
    # a charged invoice keeps the default for when a charge fails.
    due_after: str = "P30D"
    tax_enabled: bool = True
    tax_enforced: bool = False
    tax_behavior: TaxBehavior | None = None


@dataclass(frozen=True)
class Address:
    country: str | None = None
    postal_code: str | None = None
    state: str | None = None
    city: str | None = None
    line1: str | None = None
    line2: str | None = None
    phone_number: str | None = None


@dataclass(frozen=True)
class Supplier:
    name: str | None = None
    key: str | None = None
    tax_id: str | None = None
    address: Address | None = None


@dataclass(frozen=True)
class ProfileApps:
    """Immutable after creation (product.md §15): changing apps means a new profile."""

    tax: str
    invoicing: str
    payment: str

    def ids(self) -> set[str]:
        return {self.tax, self.invoicing, self.payment}


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    supplier: Supplier
    workflow: Workflow
    apps: ProfileApps
    created_at: datetime
    updated_at: datetime
    default: bool = False  # derived from the default pointer when read, never stored on the profile
    description: str | None = None
    labels: dict[str, str] | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class StripeCustomerData:
    customer_id: str | None = None
    default_payment_method_id: str | None = None
    labels: dict[str, str] | None = None


@dataclass(frozen=True)
class ExternalInvoicingCustomerData:
    labels: dict[str, str] | None = None


@dataclass(frozen=True)
class AppData:
    stripe: StripeCustomerData | None = None
    external_invoicing: ExternalInvoicingCustomerData | None = None


@dataclass(frozen=True)
class CustomerBilling:
    """A customer's billing override: a pinned profile (None: follow the default) and app data."""

    customer_id: str
    profile_id: str | None = None
    app_data: AppData = field(default_factory=AppData)
    rev: int = 0  # 0: never written; every write is conditional on the revision read
