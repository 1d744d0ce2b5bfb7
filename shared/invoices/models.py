"""Invoices in the domain: the gathering invoice's pending lines, standard invoices, their lines,
snapshots and totals (engine-rules §2.8-§2.9, product.md §16; the wire shape is views.py).

A line bills one `Billable` (what subscriptions and charges produce) over `period`: the billable's
whole service period, or a part of it when the period is billed progressively (`split_period` is
then the whole). `pre_line_quantity` is the usage of the service period already billed before this
line (0 on a first line). Quantities are the meter's, cumulative from the service period's start:
a line bills `metered(service start, line end) - pre_line_quantity`, which is exact for every
aggregation and bills usage that arrived late for an earlier part in this one (never lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from shared.billing.models import Address, AppType, Supplier, Workflow
from shared.invoices.billables import Billable
from shared.invoices.states import Facts, Status, status_of
from shared.rating.models import Period, RatedLine
from shared.rating.models import Totals as RatingTotals

ZERO = Decimal(0)
GATHERING = "gathering"


InvoiceStatus = Status  # the simple status: the first segment of the extended status


class LineType(StrEnum):
    USAGE_BASED = "usage_based"
    FLAT_FEE = "flat_fee"


class LineStatus(StrEnum):
    VALID = "valid"
    DETAILED = "detailed"
    SPLIT = "split"


class ManagedBy(StrEnum):
    SUBSCRIPTION = "subscription"
    SYSTEM = "system"
    MANUAL = "manual"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True)
class ValidationIssue:
    code: str
    message: str
    severity: Severity = Severity.CRITICAL
    field: str | None = None


@dataclass(frozen=True)
class Line:
    id: str
    key: str  # the sync key: the billable's, or `<key>/late[<billed>]` for late usage
    billable: Billable
    period: Period  # what this line bills (inside billable.service_period)
    invoice_at: datetime
    late: bool = False
    pre_line_quantity: Decimal = ZERO  # metered in the service period and billed before this line
    quantity: Decimal | None = None  # metered for this line at the snapshot (None: not snapshotted)
    rated: RatedLine | None = None
    credits: Decimal = ZERO  # applied by `credits.apply` at issue (exactly once per line)

    @property
    def type(self) -> LineType:
        return LineType.USAGE_BASED if self.billable.price.usage_based else LineType.FLAT_FEE

    @property
    def service_period(self) -> Period:
        return self.billable.service_period

    @property
    def split(self) -> bool:
        return not self.late and self.period != self.service_period

    @property
    def split_period(self) -> Period | None:
        return self.service_period if self.split else None

    @property
    def status(self) -> LineStatus:
        return LineStatus.SPLIT if self.split else LineStatus.VALID

    @property
    def managed_by(self) -> ManagedBy:
        if self.late:
            return ManagedBy.SYSTEM
        return ManagedBy.SUBSCRIPTION if self.billable.origin.subscription_id else ManagedBy.MANUAL

    @property
    def totals(self) -> RatingTotals:
        return self.rated.totals if self.rated is not None else RatingTotals()


@dataclass(frozen=True)
class CustomerSnapshot:
    id: str
    key: str
    name: str
    primary_email: str | None = None
    billing_address: Address | None = None
    tax_id: str | None = None


@dataclass(frozen=True)
class AppSnapshot:
    """The profile's invoicing and payment apps, as the lifecycle needs them."""

    invoicing_id: str
    invoicing_type: AppType
    payment_type: AppType
    draft_sync_hook: bool = False
    issuing_sync_hook: bool = False

    @property
    def stripe(self) -> bool:
        """Stripe invoices or collects: the invoice is synced to a Stripe invoice, which collects."""
        return AppType.STRIPE in (self.invoicing_type, self.payment_type)


@dataclass(frozen=True)
class ExternalIds:
    """Where the invoice lives in its invoicing and payment apps (OpenMeter's `external_ids`): with
    Stripe, the Stripe invoice (`in_...`) invoices and collects, so both ids are the same.

    `lines` maps a line id to its invoice item (`ii_...`); `number` and `hosted_url` are what Stripe
    gave the finalized invoice. `attempt` counts the syncs the app refused: a retry's requests carry
    new idempotency keys (Stripe replays a key's stored failure for 24 hours). `events` are the app's
    webhook events already applied (newest last, bounded): a redelivery changes nothing."""

    invoicing: str | None = None
    payment: str | None = None
    lines: dict[str, str] = field(default_factory=dict)
    number: str | None = None
    hosted_url: str | None = None
    attempt: int = 0
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfileSnapshot:
    id: str
    name: str
    supplier: Supplier
    workflow: Workflow
    apps: AppSnapshot


@dataclass(frozen=True)
class Notice:
    """An `invoice.created` / `invoice.updated` domain event still to publish (the outbox)."""

    id: str
    type: str
    extended_status: str


@dataclass(frozen=True)
class Invoice:
    id: str
    customer_id: str
    currency: str
    extended_status: str
    number: str
    created_at: datetime
    updated_at: datetime
    lines: tuple[Line, ...] = ()
    customer: CustomerSnapshot | None = None
    profile: ProfileSnapshot | None = None
    collection_at: datetime | None = None
    quantity_snapshotted_at: datetime | None = None
    draft_until: datetime | None = None
    issued_at: datetime | None = None
    due_at: datetime | None = None
    voided_at: datetime | None = None
    paid_at: datetime | None = None
    deleted_at: datetime | None = None
    validation_issues: tuple[ValidationIssue, ...] = ()
    outbox: tuple[Notice, ...] = ()
    transitions: int = 0  # status changes so far: makes each notice's id unique and stable
    rev: int = 0  # 0: not stored yet; every write is conditional on the revision read
    labels: dict[str, str] | None = None
    external_ids: ExternalIds | None = None  # set once an invoicing app (Stripe) synced it
    # Read from the header alone (lists): the totals and period stored with it, lines not loaded.
    summary: tuple[RatingTotals, Period | None] | None = None

    @property
    def status(self) -> Status:
        return status_of(self.extended_status)

    def facts(self, now: datetime) -> Facts:
        """What the state machine's guards read, at `now` (the customer's time)."""
        workflow = self.profile.workflow if self.profile else None
        apps = self.profile.apps if self.profile else None
        external = apps is not None and apps.invoicing_type is AppType.EXTERNAL_INVOICING
        hook = (self.extended_status == "draft.syncing" and apps is not None and apps.draft_sync_hook) or (
            self.extended_status == "issuing.syncing" and apps is not None and apps.issuing_sync_hook
        )
        # With Stripe, only a sync that Stripe accepted moves the invoice out of the syncing states
        # (the service's own step): neither the clock nor `advance` may skip it.
        stripe = (
            apps is not None and apps.stripe and self.extended_status in ("draft.syncing", "issuing.syncing")
        )
        return Facts(
            collection_due=self.collection_at is not None and self.collection_at <= now,
            draft_until_passed=self.draft_until is not None and self.draft_until <= now,
            # No profile snapshot: nobody configured auto-advance, so a person approves.
            auto_advance=workflow is not None and workflow.auto_advance,
            # A list's header has no lines loaded but was collected with some (never empty).
            has_lines=bool(self.lines) or self.summary is not None,
            has_critical_issues=any(v.severity is Severity.CRITICAL for v in self.validation_issues),
            synced=not ((external and hook) or stripe),
        )

    @property
    def gathering(self) -> bool:
        return self.extended_status == GATHERING

    @property
    def totals(self) -> RatingTotals:
        if self.summary is not None and not self.lines:
            return self.summary[0]
        return sum((line.totals for line in self.lines), RatingTotals())

    @property
    def period(self) -> Period | None:
        if self.summary is not None and not self.lines:
            return self.summary[1]
        if not self.lines:
            return None
        return Period(min(x.period.start for x in self.lines), max(x.period.end for x in self.lines))

    def with_lines(self, lines: tuple[Line, ...]) -> Invoice:
        return replace(self, lines=lines)


@dataclass
class GatheringEntry:
    """One sync key of a customer's gathering partition: its pending line (if any) and what its
    service period has been billed so far (`billed` metered quantity, cumulative, through
    `billed_through`), which makes re-syncs skip collected periods and measures late usage."""

    key: str
    line: Line | None = None
    billable: Billable | None = None  # as last collected: what a late-usage line bills
    billed: Decimal | None = None
    billed_through: datetime | None = None
    service_end: datetime | None = None
    feature_key: str | None = None
    invoices: list[str] = field(default_factory=list)
    late_checkable: bool = False  # a usage line whose whole service period was billed
    # The invoice that collected a part of this key and has not snapshotted its quantity yet: until
    # it has, what was billed is unknown, so the remainder is not collected and no late line made.
    awaiting: str | None = None


@dataclass
class Gathering:
    customer_id: str
    currency: str
    id: str
    created_at: datetime
    updated_at: datetime
    entries: dict[str, GatheringEntry] = field(default_factory=dict)
    rev: int = 0
    # When the scheduled run must sync it again, as stored (the head's `INVDUE` entry): a due line,
    # or the next late-usage check (`gathering.next_due`).
    due: datetime | None = None

    def pending(self) -> list[Line]:
        return sorted(
            (e.line for e in self.entries.values() if e.line is not None),
            key=lambda x: (x.invoice_at, x.key),
        )
