"""Invoicing use cases: sync the gathering invoice, collect due lines into standard invoices, drive
them through their lifecycle, and the API's actions (docs/architecture.md "Invoices").

Time: every "now" is the customer's (`now_for`: a test clock's time for a customer on one).

Exactly once. Each step is stored before the next one depends on it, and every write is conditional
on the revision read, so a crash or a concurrent run re-reads and continues from the stored state:
- a collection writes the invoice, its lines and the gathering entries it took in one transaction;
- the snapshot (quantities, rating without credits, what is now billed per sync key) is one
  transaction with the gathering entries; nothing depends on amounts before it is stored;
- credits are applied at issue with keys `invoice/<id>/<line id>` on the stored amounts (a re-run
  gets the same answers), and the issue takes the next number of its profile in the same
  transaction that stores the invoice as issued (gap-free: a lost race takes the next one);
- notifications go through an outbox on the header: stored with the state change, published after
  it, cleared after publishing; their ids derive from (invoice, transition), so a republish after a
  crash is deduplicated by the notify function;
- bookings ride the same outbox: for each of its `issued`, `paid` and `voided` notices the `Bookings`
  port (charges) books, settles or un-books the invoice's lines before the notices are published; a
  crash before the outbox is cleared calls it again, and it is idempotent per (line, status);
- the invoicing app (Stripe) is called before the state its answer moves the invoice to is stored,
  with idempotency keys derived from the invoice (`stripe_invoicing.py`): a re-run after a crash
  asks again and gets the same objects back, never new ones.

The invoicing app (a profile whose invoicing or payment app is Stripe): validation asks it what
holds the draft (a missing Stripe customer id: `draft.invalid`); `draft.syncing` creates or updates
the Stripe draft and its items; `issuing.syncing` applies credits, takes the number, brings the items
to the issued amounts and finalizes the Stripe invoice; the invoice then waits in
`payment_processing.pending` for Stripe's webhook (`apply_app_event`). Stripe refusing a sync moves
the invoice to `draft.sync_failed` / `issuing.sync_failed` with Stripe's message as a validation
issue (`retry` syncs again); Stripe not answering leaves it where it is, due at once, so the next
scheduled run asks again. Voiding an issued invoice voids the Stripe invoice first; deleting a
draft deletes the Stripe draft.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from shared.billing.models import AppType
from shared.catalog.models import Price, PriceType
from shared.core import durations
from shared.core.errors import Conflict, DomainError, InvalidInput, NotFound, Unavailable
from shared.core.ids import new_id
from shared.core.listing import Listed, PageLike, StringFilter, sort_items
from shared.core.observability import SERVICE
from shared.core.timeutil import floor_minute
from shared.invoices import gathering as g_ops
from shared.invoices import states
from shared.invoices.billables import Billable
from shared.invoices.models import (
    GATHERING,
    ZERO,
    ExternalIds,
    Gathering,
    GatheringEntry,
    Invoice,
    Line,
    Notice,
    ValidationIssue,
)
from shared.invoices.ports import (
    BillableSource,
    BillingSettings,
    Bookings,
    Credits,
    CustomerDirectory,
    Documents,
    InvoicingApp,
    InvoicingRejected,
    InvoicingUnavailable,
    Publisher,
    Sweepable,
    SyncIndexed,
    UsageMeter,
)
from shared.invoices.repository import InvoiceRepository, Stale, SweepState
from shared.rating import engine
from shared.rating.models import BillableLine, Period

log = Logger(service=SERVICE, child=True)
_NOTICE_NS = uuid.UUID("6b1f3f0e-9d8e-4c55-8f0b-1d6f4a9c2e11")
_ATTEMPTS = 5
FULL_SWEEP_EVERY = timedelta(days=1)  # the scheduled run's fallback: every customer, once a day
_CURSOR_EVERY = 25  # customers the full sweep does between storing its cursor
NUMBER_PREFIX = "INV"
Render = Callable[[Invoice], dict[str, Any]]
Step = Callable[[str], None]


@dataclass(frozen=True)
class InvoiceQuery:
    page: PageLike
    customer_id: str | None = None
    statuses: tuple[str, ...] = ()
    currency: str | None = None
    issued_gte: datetime | None = None
    issued_lt: datetime | None = None
    sort: str | None = None


S, T = states.ExtendedStatus, states.Trigger
# Where the service fires `next` on its own whenever the machine accepts it now (its guards hold).
_AUTOMATIC = frozenset(
    {
        S.DRAFT_WAITING_FOR_COLLECTION,
        S.DRAFT_VALIDATING,
        S.DRAFT_SYNCING,
        S.DRAFT_WAITING_AUTO_APPROVAL,
        S.DRAFT_READY_TO_ISSUE,
        S.ISSUED,
    }
)

# The external invoicing app's payment statuses (OpenMeter's custom invoicing triggers) -> triggers.
PAYMENT_TRIGGERS = {
    "paid": "paid",
    "payment_failed": "payment_failed",
    "payment_uncollectible": "uncollectible",
    "payment_overdue": "overdue",
    "action_required": "action_required",
    "void": "void",
}

# The transitions the `Bookings` port is told of: amounts final, settled, reversed.
_BOOKED = frozenset({S.ISSUED.value, S.PAID.value, S.VOIDED.value})

# Stripe's invoice webhook events -> triggers (OpenMeter's Stripe app).
STRIPE_EVENT_TRIGGERS = {
    "invoice.paid": "paid",
    "invoice.payment_failed": "payment_failed",
    "invoice.payment_action_required": "action_required",
    "invoice.marked_uncollectible": "uncollectible",
    "invoice.voided": "void",
}
SYNC_ISSUE = "invoicing_app_sync_failed"  # the app refused a sync: cleared by `retry`
_KEPT_EVENTS = 20  # app events remembered per invoice (redeliveries come within days, a few at most)
# Before payment processing an app's payment event is early (its finalize not stored yet): refused
# with a 409 so the app delivers it again later.
_BEFORE_PAYMENT = frozenset({S.ISSUING_SYNCING, S.ISSUING_SYNC_FAILED, S.ISSUED})

SORTS: dict[str, Callable[[Invoice], Any]] = {
    "created_at": lambda i: (i.created_at, i.id),
    "issued_at": lambda i: (i.issued_at is None, i.issued_at or i.created_at, i.id),
    "id": lambda i: i.id,
}


class InvoiceService:
    name = "invoices"  # a test clock's due-work provider (shared/testclocks/due.py)

    def __init__(
        self,
        repo: InvoiceRepository,
        sources: Sequence[BillableSource],
        usage: UsageMeter,
        credits: Credits,
        billing: BillingSettings,
        customers: CustomerDirectory,
        now_for: Callable[[str], datetime],
        render: Render,
        *,
        documents: Documents | None = None,
        publisher: Publisher | None = None,
        bookings: Bookings | None = None,
        new_id: Callable[[], str] = new_id,
        step: Step | None = None,
        invoicing: InvoicingApp | None = None,
    ) -> None:
        self.repo = repo
        self.sources = sources
        self.usage = usage
        self.credits = credits
        self.billing = billing
        self.customers = customers
        self.now_for = now_for
        self.render = render
        self.documents = documents
        self.publisher = publisher
        self.bookings = bookings
        self.new_id = new_id
        self.step = step or (lambda _name: None)
        self.invoicing = invoicing  # Stripe, when a Stripe key is configured
        self.failures = 0  # customers whose run failed (logged), since the service was built
        self.complete = True  # the last `sweep` did everything due (False: it ran out of time)

    # -- gathering --------------------------------------------------------------------------------
    def sync(self, customer_id: str, now: datetime) -> dict[str, Gathering]:
        """Reconcile the customer's gathering invoices with the billables up to the horizon, and add
        late-usage lines. Idempotent: a second run with the same billables and usage writes nothing."""
        self.billing.forget()  # a customer's run starts from its profile as it is now
        billables: list[Billable] = []
        for source in self.sources:
            billables += [b for b in source.billables(customer_id, now) if b.customer_id == customer_id]
        for _ in range(_ATTEMPTS):
            gatherings = self.repo.gatherings(customer_id)
            try:
                synced = self._sync(customer_id, now, billables, gatherings)
            except Stale:
                continue
            for source in self.sources:
                if isinstance(source, SyncIndexed):  # stored: the source's index may move on
                    source.synced(customer_id, now)
                    self.step("synced")
            return synced
        raise Conflict(f"The gathering invoice of customer [{customer_id}] changed concurrently; retry")

    def _sync(
        self, customer_id: str, now: datetime, billables: list[Billable], gatherings: dict[str, Gathering]
    ) -> dict[str, Gathering]:
        by_currency: dict[str, list[Billable]] = {}
        for b in billables:
            by_currency.setdefault(b.currency, []).append(b)
        for currency in set(by_currency) | set(gatherings):
            gathering = gatherings.get(currency)
            if gathering is None:
                gathering = Gathering(customer_id, currency, self.new_id(), now, now)
            changed, removed = g_ops.reconcile(gathering.entries, by_currency.get(currency, []), self.new_id)
            changed += self._late_lines(gathering, now, {e.key for e in changed})
            entries = dict(gathering.entries)
            entries.update({e.key: e for e in changed})
            for key in removed:
                entries.pop(key, None)
            due = g_ops.next_due(entries, now)
            if not changed and not removed and (gathering.rev == 0 or due == gathering.due):
                continue
            if changed or removed:  # else only a late-usage check was due: the head moves on
                gathering = replace(gathering, updated_at=now)
            stored = self.repo.save_gathering(gathering, changed, removed, due)
            gatherings[currency] = replace(stored, entries=entries, due=due)
            self.step("gathering")
        return gatherings

    def _late_lines(self, gathering: Gathering, now: datetime, skip: set[str]) -> list[GatheringEntry]:
        candidates = [
            e
            for e in g_ops.late_candidates(gathering.entries, now)
            if e.key not in skip
            and e.billable is not None
            and e.feature_key is not None
            # made already (pending, or collected and waiting for its snapshot)
            and g_ops.late_key(e.key, e.billed or ZERO) not in gathering.entries
        ]
        asks = [
            (e.feature_key or "", e.billable.service_period) for e in candidates if e.billable is not None
        ]
        out = []
        for entry, measured in zip(candidates, self._measure(gathering.customer_id, asks), strict=True):
            if isinstance(measured, DomainError):
                continue  # the feature is gone: nothing can be measured
            line = g_ops.late_line(entry, measured, now, self.new_id)
            if line is not None:
                out.append(GatheringEntry(line.key, line=line))
        return out

    def _measure(self, customer_id: str, asks: list[tuple[str, Period]]) -> list[Decimal | DomainError]:
        """Usage is kept per minute: periods are measured on whole minutes (floored)."""
        if not asks:
            return []
        floored = [(key, Period(floor_minute(p.start), floor_minute(p.end))) for key, p in asks]
        return self.usage.quantities(customer_id, floored)

    # -- collection -------------------------------------------------------------------------------
    def _collect(
        self,
        customer_id: str,
        now: datetime,
        *,
        force: bool = False,
        known: dict[str, Gathering] | None = None,
    ) -> list[tuple[Invoice, Gathering]]:
        """The due pending lines of each currency become a standard invoice (draft, waiting for its
        collection time). One transaction per invoice with the gathering entries it took."""
        created: list[tuple[Invoice, Gathering]] = []
        for _ in range(_ATTEMPTS):
            gatherings = known if known is not None else self.repo.gatherings(customer_id)
            known = None  # what this run wrote last is current; after a lost race, read again
            if not any(
                e.line is not None and e.awaiting is None and (force or e.line.invoice_at <= now)
                for gathering in gatherings.values()
                for e in gathering.entries.values()
            ):
                return created
            profile = self.billing.effective(customer_id)
            try:
                for gathering in gatherings.values():
                    made = self._collect_one(gathering, now, profile, force)
                    if made is not None:
                        created.append(made)
                return created
            except Stale:
                continue
        raise Conflict(f"The gathering invoice of customer [{customer_id}] changed concurrently; retry")

    def _collect_one(
        self, gathering: Gathering, now: datetime, profile: Any, force: bool
    ) -> tuple[Invoice, Gathering] | None:
        invoice_id = self.new_id()
        picks = g_ops.collect(
            gathering.entries,
            now,
            invoice_id,
            self.new_id,
            force=force,
            progressive=profile.workflow.progressive_billing,
        )
        if not picks:
            return None
        entries = dict(gathering.entries)
        for pick in picks:
            entries[pick.entry.key] = pick.entry
            if pick.line.late:  # no second late line for the period until this one is measured
                origin = entries.get(g_ops.origin_key(pick.line))
                if origin is not None:
                    entries[origin.key] = replace(origin, awaiting=invoice_id, late_checkable=False)
        touched = {p.entry.key for p in picks} | {
            g_ops.origin_key(p.line) for p in picks if p.line.late and g_ops.origin_key(p.line) in entries
        }
        lines = tuple(p.line for p in picks)
        collection_at = durations.step(
            max(x.invoice_at for x in lines), profile.workflow.collection_interval, 1
        )
        if force:
            collection_at = min(collection_at, now)  # invoice now: the usage so far, at once
        inv = Invoice(
            id=invoice_id,
            customer_id=gathering.customer_id,
            currency=gathering.currency,
            extended_status="draft.waiting_for_collection",
            number=f"DRAFT-{invoice_id[-8:]}",
            created_at=now,
            updated_at=now,
            lines=lines,
            customer=self.customers.snapshot(gathering.customer_id),
            profile=profile,
            collection_at=collection_at,
            outbox=(
                Notice(
                    self._notice_id(invoice_id, 0, "created"),
                    "invoice.created",
                    "draft.waiting_for_collection",
                ),
            ),
        )
        stored = self.repo.create(
            inv,
            self._due(inv, now),
            replace(gathering, updated_at=now),
            [entries[k] for k in sorted(touched)],
            due := g_ops.next_due(entries, now),
        )
        self.step("create")
        return stored, replace(gathering, entries=entries, rev=gathering.rev + 1, updated_at=now, due=due)

    # -- the lifecycle ----------------------------------------------------------------------------
    @staticmethod
    def _notice_id(invoice_id: str, transition: int, status: str) -> str:
        return str(uuid.uuid5(_NOTICE_NS, f"{invoice_id}/{transition}/{status}"))

    def _move(self, inv: Invoice, trigger: str, now: datetime, *, synced: bool = False) -> Invoice:
        """Fire `trigger` through the state machine (its guards read `inv.facts(now)`), with the
        notice and the timestamp the target state carries. `synced`: the invoicing app accepted the
        sync just now (the guard of the syncing states)."""
        facts = inv.facts(now)
        if synced:
            facts = replace(facts, synced=True)
        target = states.transition(inv.extended_status, trigger, facts)
        n = inv.transitions + 1
        notice = Notice(self._notice_id(inv.id, n, target), "invoice.updated", target)
        moved = replace(
            inv, extended_status=target.value, transitions=n, outbox=(*inv.outbox, notice), updated_at=now
        )
        if target is S.PAID:
            moved = replace(moved, paid_at=now)
        elif target is S.VOIDED:
            moved = replace(moved, voided_at=now)
        elif target is S.DELETED:
            moved = replace(moved, deleted_at=now)
        return moved

    def _due(self, inv: Invoice, now: datetime) -> datetime | None:
        """When the scheduled run must look at the invoice again (None: only an action moves it)."""
        if inv.outbox:
            return now
        s = inv.extended_status
        if s == "draft.waiting_for_collection":
            return inv.collection_at
        if s == "draft.waiting_auto_approval":
            return inv.draft_until
        if s in (
            "payment_processing.pending",
            "payment_processing.failed",
            "payment_processing.action_required",
        ):
            return inv.due_at
        if s in (S.DRAFT_SYNCING, S.ISSUING_SYNCING) and inv.profile is not None and inv.profile.apps.stripe:
            return now  # Stripe did not answer: the next run asks again
        return None

    def _drive(
        self, inv: Invoice, now: datetime, trigger: str | None = None, gathering: Gathering | None = None
    ) -> Invoice:
        """Apply `trigger` (an action's), then every automatic step due at `now`; store the result
        and publish its notices."""
        for _ in range(_ATTEMPTS):
            try:
                return self._drive_once(inv, now, trigger, gathering)
            except Stale:
                fresh = self.repo.get(inv.id)
                if fresh is None:
                    raise NotFound(f"Invoice [{inv.id}] not found") from None
                if trigger is not None and fresh.rev != inv.rev:
                    states.transition(fresh.extended_status, trigger, fresh.facts(now))  # still allowed?
                inv = fresh
                gathering = None
        raise Conflict(f"Invoice [{inv.id}] changed concurrently; retry")

    def _drive_once(
        self, inv: Invoice, now: datetime, trigger: str | None, gathering: Gathering | None
    ) -> Invoice:
        stored = inv
        counter: tuple[str, int] | None = None
        if trigger is not None:
            inv = self._move(inv, trigger, now)
            if trigger == T.RETRY:  # the app's refusal is what is retried
                inv = replace(
                    inv, validation_issues=tuple(v for v in inv.validation_issues if v.code != SYNC_ISSUE)
                )
        while True:
            s = inv.extended_status
            apps = inv.profile.apps if inv.profile else None
            if s in (S.DRAFT_SYNCING, S.ISSUING_SYNCING) and apps is not None and apps.stripe:
                synced = self._sync_app(inv, now)
                if synced is None:
                    break  # Stripe did not answer: stays here, due now (`_due`)
                inv, counter = synced
                inv = self._review_window(inv, now)
            elif s == S.DRAFT_COLLECTING:
                # Stored before anything depends on the amounts: from here on they are fixed.
                inv = stored = self._snapshot(inv, now, gathering)
            elif s == S.ISSUING_SYNCING and states.can(s, T.NEXT, inv.facts(now)):
                inv, counter = self._issue(inv, now)
            elif s in _AUTOMATIC and states.can(s, T.NEXT, inv.facts(now)):
                # The machine's guards decide: collection due, critical issues (-> invalid),
                # auto-advance or manual approval, an integrator's sync pending, draft_until passed.
                inv = self._review_window(self._move(inv, T.NEXT, now), now)
            elif (
                s == S.PAYMENT_PENDING
                and apps is not None
                and apps.payment_type is AppType.SANDBOX
                and not apps.stripe
            ):
                # OpenMeter's sandbox app settles an invoice as soon as it is issued (its default
                # target payment status is `paid`): no external effect, nothing to wait for.
                inv = self._move(inv, T.PAID, now)
            elif (
                s
                in (
                    "payment_processing.pending",
                    "payment_processing.failed",
                    "payment_processing.action_required",
                )
                and inv.due_at is not None
                and inv.due_at <= now
            ):
                inv = self._move(inv, T.OVERDUE, now)
            else:
                break
        if inv != stored:
            if counter is not None and self.documents is not None:
                self.documents.put(self.render(inv))  # idempotent: a re-run writes the same objects
            inv = self.repo.save(inv, self._due(inv, now), lines=counter is not None, counter=counter)
            self.step("save")
        return self._publish(inv, now)

    @staticmethod
    def _review_window(inv: Invoice, now: datetime) -> Invoice:
        """The review window opens when the draft is ready (an early snapshot starts it early)."""
        if inv.extended_status == S.DRAFT_WAITING_AUTO_APPROVAL and inv.profile is not None:
            return replace(inv, draft_until=durations.step(now, inv.profile.workflow.draft_period, 1))
        return inv

    def _publish(self, inv: Invoice, now: datetime) -> Invoice:
        if not inv.outbox:
            return inv
        booked = [n.extended_status for n in inv.outbox if n.extended_status in _BOOKED]
        if self.bookings is not None and booked:
            for status in booked:  # in transition order: issued before paid
                self.bookings.moved(inv, status, now)
            self.step("booked")
        if self.publisher is not None:
            # One PublishBatch for a run's transitions (up to 10 per request), not one Publish each.
            self.publisher.publish_many(
                [
                    (
                        notice.type,
                        self.render(replace(inv, extended_status=notice.extended_status)),
                        now,
                        notice.id,
                    )
                    for notice in inv.outbox
                ]
            )
        cleared = replace(inv, outbox=())
        saved = self.repo.save(cleared, self._due(cleared, now))
        self.step("published")
        return saved

    def _snapshot(self, inv: Invoice, now: datetime, known: Gathering | None = None) -> Invoice:
        """Measure every line, rate it (credits come at issue) and store the invoice as validating,
        with what each sync key has now billed, in one transaction."""
        for _ in range(_ATTEMPTS):
            gathering = (
                known if known is not None else self.repo.gatherings(inv.customer_id).get(inv.currency)
            )
            known = None
            lines: list[Line] = []
            issues: list[ValidationIssue] = []
            updates: dict[str, GatheringEntry] = {}
            for line, (measured, cumulative, issue) in zip(inv.lines, self._quantities(inv), strict=True):
                if issue is not None:
                    issues.append(issue)
                rated_line = replace(line, quantity=measured)
                try:
                    rated_line = replace(rated_line, rated=engine.rate(self._billable_line(rated_line, ZERO)))
                except InvalidInput as exc:
                    issues.append(
                        ValidationIssue("line_rating_failed", f"{line.billable.name}: {exc.message}")
                    )
                lines.append(rated_line)
                if gathering is not None and cumulative is not None:
                    key = g_ops.origin_key(line)
                    entry = updates.get(key) or gathering.entries.get(key)
                    if entry is not None and (entry.awaiting == inv.id):
                        updates[key] = g_ops.snapshotted(entry, line, cumulative, inv.id)
            moved = self._move(replace(inv, lines=tuple(lines)), T.NEXT, now)  # collecting → validating
            apps = inv.profile.apps if inv.profile else None
            if apps is not None and apps.stripe:
                # What Stripe needs before it can bill anyone (the customer's Stripe customer id).
                if self.invoicing is None:
                    issues.append(
                        ValidationIssue(
                            "stripe_not_configured",
                            "the billing profile invoices with Stripe but no Stripe secret key is configured",
                        )
                    )
                else:
                    issues += self.invoicing.validate(moved)
            moved = replace(moved, quantity_snapshotted_at=now, validation_issues=tuple(issues))
            g_part = None
            if gathering is not None and updates:
                entries = dict(gathering.entries)
                entries.update(updates)
                g_part = (
                    replace(gathering, updated_at=now),
                    list(updates.values()),
                    g_ops.next_due(entries, now),
                )
            try:
                saved = self.repo.save(moved, self._due(moved, now), lines=True, gathering=g_part)
            except Stale:
                fresh = self.repo.get(inv.id)
                if fresh is None or fresh.rev != inv.rev:
                    raise
                continue  # only the gathering moved (a sync): measure again against it
            self.step("snapshot")
            return saved
        raise Conflict(f"Invoice [{inv.id}] changed concurrently; retry")

    def _quantities(
        self, inv: Invoice
    ) -> list[tuple[Decimal | None, Decimal | None, ValidationIssue | None]]:
        """Per line: (its metered quantity, the period's cumulative usage to the line's end, an issue).
        A line bills the cumulative usage minus what was billed before it (`pre_line_quantity`)."""
        asks = [
            (line.billable.feature_key or "", Period(line.service_period.start, line.period.end))
            for line in inv.lines
            if line.billable.price.usage_based and line.billable.feature_key
        ]
        measured = iter(self._measure(inv.customer_id, asks))
        out: list[tuple[Decimal | None, Decimal | None, ValidationIssue | None]] = []
        for line in inv.lines:
            b = line.billable
            if not b.price.usage_based:
                out.append((Decimal(b.quantity), None, None))
            elif not b.feature_key:
                out.append(
                    (ZERO, None, ValidationIssue("line_missing_feature", f"{b.name}: needs a feature"))
                )
            else:
                got = next(measured)
                if isinstance(got, DomainError):
                    out.append(
                        (ZERO, None, ValidationIssue("line_usage_unavailable", f"{b.name}: {got.message}"))
                    )
                else:
                    # Gauges (`latest`) can fall below what was billed: never a negative line.
                    out.append((max(ZERO, got - line.pre_line_quantity), got, None))
        return out

    @staticmethod
    def _billable_line(line: Line, credits: Decimal) -> BillableLine:
        b = line.billable
        price = b.price
        if price.type is PriceType.FLAT and price.amount is not None and b.quantity != 1:
            price = Price(PriceType.FLAT, price.amount * b.quantity)  # n instances of an add-on
        return BillableLine(
            name=b.name,
            currency=b.currency,
            price=price,
            period=line.period,
            quantity=line.quantity or ZERO if price.usage_based else ZERO,
            pre_line_quantity=line.pre_line_quantity if price.usage_based else ZERO,
            split_period=line.split_period,
            payment_term=b.payment_term,
            unit_config=b.unit_config if price.usage_based else None,
            discounts=b.discounts,
            commitments=b.commitments,
            proration=b.proration,
            credits=credits,
            late=line.late,
        )

    def _issue(self, inv: Invoice, now: datetime) -> tuple[Invoice, tuple[str, int]]:
        """Credits, the number, the dates, and issued."""
        prepared, counter = self._prepare_issue(inv, now)
        return self._move(prepared, T.NEXT, now), counter

    def _sync_app(self, inv: Invoice, now: datetime) -> tuple[Invoice, tuple[str, int] | None] | None:
        """The invoicing app's sync in `draft.syncing` (the draft) or `issuing.syncing` (credits,
        number, then finalize): the invoice moved on (with its ids and, at issue, the number counter
        to store), moved to the sync-failed state with the app's message, or None when the app did
        not answer (nothing changes; the caller stores what it has, due now)."""
        issuing = inv.extended_status == S.ISSUING_SYNCING
        counter: tuple[str, int] | None = None
        try:
            if self.invoicing is None:
                raise InvoicingRejected("no Stripe secret key is configured: the invoice cannot be synced")
            if issuing:
                prepared, counter = self._prepare_issue(inv, now)
                ids = self.invoicing.finalize(prepared)
            else:
                prepared, ids = inv, self.invoicing.sync_draft(inv)
        except InvoicingUnavailable as exc:
            log.warning(
                "invoicing app did not answer: the invoice stays for the next run",
                extra={"invoice_id": inv.id, "extended_status": inv.extended_status, "error": str(exc)},
            )
            return None
        except InvoicingRejected as exc:
            # Stored as it was before this step (no credits, no number): `retry` repeats it. The ids
            # the app made before it refused are kept, so the retry updates them.
            known = exc.synced or inv.external_ids or ExternalIds()
            issue = ValidationIssue(SYNC_ISSUE, exc.message, field=exc.field)
            failed = replace(
                inv,
                external_ids=replace(known, attempt=known.attempt + 1),
                validation_issues=(*inv.validation_issues, issue),
            )
            log.warning(
                "invoicing app refused the invoice", extra={"invoice_id": inv.id, "error": exc.message}
            )
            return self._move(failed, T.FAILED, now), None
        self.step("app_sync")
        return self._move(replace(prepared, external_ids=ids), T.NEXT, now, synced=True), counter

    def _prepare_issue(self, inv: Invoice, now: datetime) -> tuple[Invoice, tuple[str, int]]:
        """Credits (exactly once per line), the final number, issue and due dates."""
        lines = list(inv.lines)
        unrestricted, restricted = self.credits.scopes(inv.customer_id, inv.currency)
        groups: dict[str | None, list[int]] = {}
        for i, line in enumerate(lines):
            if line.rated is not None and line.rated.totals.total > 0:
                groups.setdefault(line.billable.feature_key, []).append(i)
        exhausted = False  # an apply that got less than it asked drained every unrestricted block
        for feature, members in groups.items():
            if not ((unrestricted and not exhausted) or (feature is not None and feature in restricted)):
                continue
            asked = sum((lines[i].totals.total for i in members), ZERO)
            applied = self.credits.apply(
                inv.customer_id,
                inv.currency,
                asked,
                inv.quantity_snapshotted_at or now,
                f"invoice/{inv.id}/{feature or '-'}",
                feature_key=feature,
                name=f"Invoice {inv.id}",
            )
            self.step("credits")
            exhausted = exhausted or applied < asked
            for i in members:  # in line order, each line at most its total
                take = min(applied, lines[i].totals.total)
                if take:
                    lines[i] = replace(
                        lines[i], credits=take, rated=engine.rate(self._billable_line(lines[i], take))
                    )
                applied -= take
        profile_id = inv.profile.id if inv.profile else "none"
        year = now.year
        counter_key = f"INVNUM#{profile_id}#{year}"
        taken = self.repo.counter(counter_key) + 1
        due_after = inv.profile.workflow.due_after if inv.profile else "P30D"
        inv = replace(
            inv,
            lines=tuple(lines),
            number=f"{NUMBER_PREFIX}-{year}-{taken:06d}",
            issued_at=now,
            due_at=durations.step(now, due_after, 1),
        )
        return inv, (counter_key, taken)

    # -- runs -------------------------------------------------------------------------------------
    def process(self, customer_id: str, now: datetime, invoice_ids: Iterable[str] = ()) -> int:
        """Everything due for one customer at `now`: sync, collect, drive its due invoices."""
        done = 0
        gatherings = self.sync(customer_id, now)
        for inv, gathering in self._collect(customer_id, now, known=gatherings):
            self._drive(inv, now, gathering=gathering)
            done += 1
        for invoice_id in invoice_ids:
            found = self.repo.get(invoice_id)
            if found is None or found.customer_id != customer_id:
                continue
            self._drive(found, now)
            done += 1
        return done

    def sweep(self, now: datetime, out_of_time: Callable[[], bool] | None = None) -> int:
        """The scheduled run, each customer at its own now (a customer on a test clock is only moved
        by advancing its clock): the customers something is due for (the sources' indexes: a
        subscription changed or a service period started; a due charge; the invoices' due index: a
        due gathering line or late-usage check, a due invoice step), then, once a day, every customer
        a source can list (the full sweep, `_full_sweep`).

        `out_of_time()` is asked before each customer: once it says so the run stops (`complete` is
        then False) and leaves the rest to the next run. Nothing is lost: a customer stays in its
        index until its sync is stored, and the full sweep goes on from its stored cursor."""
        check = out_of_time or (lambda: False)
        self.complete = True
        done = 0
        work = self._due_work(now)
        for customer_id, ids in work.items():
            if check():
                self.complete = False
                return done
            done += self._isolated(customer_id, self.now_for(customer_id), ids)
        return done + self._full_sweep(now, set(work), check)

    def _due_work(self, now: datetime, wanted: set[str] | None = None) -> dict[str, list[str]]:
        """Customer -> its due invoice ids, for the customers something is due for at `now`."""
        work: dict[str, list[str]] = {}
        for source in self.sources:
            for customer_id in source.customers_to_bill(now):
                if wanted is None or customer_id in wanted:
                    work.setdefault(customer_id, [])
        for entry in self.repo.due(now):
            if wanted is None or entry["customer_id"] in wanted:
                ids = work.setdefault(entry["customer_id"], [])
                if entry["invoice_id"]:
                    ids.append(entry["invoice_id"])
        return work

    def _full_sweep(self, now: datetime, visited: set[str], out_of_time: Callable[[], bool]) -> int:
        """Once every `FULL_SWEEP_EVERY`, every customer the sources can list is synced, as every run
        did before the indexes: the fallback for what no index sees (a billing profile's proration
        mode changed, timelines written before the sync index existed, late usage between scheduled
        checks). Resumable: the customers go in id order and the last one done is stored every
        `_CURSOR_EVERY` customers and when the run stops, conditional on the cursor's revision (a
        concurrent run that moved it wins, this one stops); a crash repeats at most that many
        customers, whose runs are idempotent."""
        state = self.repo.sweep_state()
        try:
            if state is None or (state.cursor is None and state.started_at + FULL_SWEEP_EVERY <= now):
                state = self.repo.save_sweep(SweepState(now, "", state.rev if state else 0))
                self.step("sweep")
            if state.cursor is None:
                return 0  # done for today
            customers = sorted(
                {c for src in self.sources if isinstance(src, Sweepable) for c in src.every_customer(now)}
            )
            done = 0
            last, since = state.cursor, 0
            for customer_id in (c for c in customers if c > state.cursor):
                if out_of_time():
                    self.complete = False
                    if since:
                        self.repo.save_sweep(replace(state, cursor=last))
                        self.step("sweep")
                    return done
                if customer_id not in visited:
                    done += self._isolated(customer_id, self.now_for(customer_id), [])
                last, since = customer_id, since + 1
                if since == _CURSOR_EVERY:
                    state, since = self.repo.save_sweep(replace(state, cursor=last)), 0
                    self.step("sweep")
            self.repo.save_sweep(replace(state, cursor=None))
            self.step("sweep")
            return done
        except Stale:
            return 0  # another run moved the cursor: it carries on

    def _isolated(self, customer_id: str, now: datetime, invoice_ids: list[str]) -> int:
        """One customer's run; its failure (no billing profile yet, a dependency down) is logged and
        leaves the others running. Nothing is lost: its work stays due for the next run."""
        try:
            return self.process(customer_id, now, invoice_ids)
        except Exception:
            log.exception("invoice run failed for a customer", extra={"customer_id": customer_id})
            self.failures += 1
            return 0

    def run_due(self, customer_ids: Sequence[str], until: datetime) -> int:
        """A test clock's step: the customers' work due at `until` (their clock reads `until`): those
        a source's index has due (a subscription changed or a service period started, a due charge),
        and those with a due gathering line, late-usage check or invoice (the due index)."""
        work = self._due_work(until, set(customer_ids))
        return sum(self._isolated(c, until, ids) for c, ids in work.items())

    def next_due(self, customer_ids: Sequence[str], after: datetime) -> datetime | None:
        wanted = set(customer_ids)
        for entry in self.repo.next_due(after):
            if entry["customer_id"] in wanted:
                at: datetime = entry["at"]
                return at
        return None

    # -- reads ------------------------------------------------------------------------------------
    def get(self, invoice_id: str) -> Invoice:
        inv = self.repo.get(invoice_id)
        if inv is not None:
            return inv
        pointer = self.repo.gathering_pointer(invoice_id)
        if pointer is None:
            raise NotFound(f"Invoice [{invoice_id}] not found")
        customer_id, currency = pointer
        found = self.repo.gatherings(customer_id).get(currency)
        if found is None:
            raise NotFound(f"Invoice [{invoice_id}] not found")
        return self._live(found)

    def gathering_of(self, customer_ref: str) -> list[Invoice]:
        customer_id = self.customers.resolve(customer_ref)
        return [self._live(g) for _, g in sorted(self.repo.gatherings(customer_id).items())]

    def _live(self, gathering: Gathering) -> Invoice:
        """The gathering invoice with real-time quantities: usage so far, rated as a preview (never
        stored)."""
        now = self.now_for(gathering.customer_id)
        pending = gathering.pending()
        metered = [x for x in pending if x.billable.price.usage_based and x.billable.feature_key]
        asks = [
            (
                x.billable.feature_key or "",
                Period(x.service_period.start, min(x.period.end, max(x.period.start, now))),
            )
            for x in metered
        ]
        so_far = dict(zip((x.key for x in metered), self._measure(gathering.customer_id, asks), strict=True))
        lines = []
        for line in pending:
            got = so_far.get(line.key)
            if isinstance(got, Decimal):
                line = replace(line, quantity=max(ZERO, got - line.pre_line_quantity))
            elif not line.billable.price.usage_based:
                line = replace(line, quantity=Decimal(line.billable.quantity))
            with contextlib.suppress(InvalidInput):  # a preview: the snapshot reports the issue
                line = replace(line, rated=engine.rate(self._billable_line(line, ZERO)))
            lines.append(line)
        return Invoice(
            id=gathering.id,
            customer_id=gathering.customer_id,
            currency=gathering.currency,
            extended_status=GATHERING,
            number=f"GATHER-{gathering.id[-8:]}",
            created_at=gathering.created_at,
            updated_at=gathering.updated_at,
            lines=tuple(lines),
            rev=gathering.rev,
        )

    def list_invoices(self, query: InvoiceQuery) -> Listed[Invoice]:
        """Standard invoices; the customer's gathering invoices too when `gathering` is asked for."""
        if query.customer_id is not None:
            entries = self.repo.customer_entries(query.customer_id)
        else:
            entries = self.repo.list_entries()
        if query.currency is not None:
            entries = [e for e in entries if e["currency"] == query.currency]
        found = self.repo.headers([e["id"] for e in entries])
        if GATHERING in query.statuses and query.customer_id is not None:
            gatherings = self.repo.gatherings(query.customer_id).values()
            found += [
                self._live(g) for g in gatherings if query.currency is None or g.currency == query.currency
            ]
        status = StringFilter("status", "oeq", ",".join(query.statuses)) if query.statuses else None
        found = [
            i
            for i in found
            if (status is None or status.matches(i.status.value) or status.matches(i.extended_status))
            and (query.issued_gte is None or (i.issued_at is not None and i.issued_at >= query.issued_gte))
            and (query.issued_lt is None or (i.issued_at is not None and i.issued_at < query.issued_lt))
        ]
        return Listed.of(query.page, sort_items(found, query.sort, SORTS, "created_at"))

    # -- actions ----------------------------------------------------------------------------------
    def act(self, invoice_id: str, action: str) -> Invoice:
        """approve, advance, retry, snapshot_quantities, void: 409 naming the state when refused."""
        inv = self.repo.get(invoice_id)
        if inv is None:
            if self.repo.gathering_pointer(invoice_id) is not None:
                raise states.TransitionNotAllowed(S.GATHERING, action)
            raise NotFound(f"Invoice [{invoice_id}] not found")
        now = self.now_for(inv.customer_id)
        states.perform(inv.extended_status, action, inv.facts(now))  # 409 naming the state and action
        if action in (states.Action.DELETE, states.Action.VOID):
            # Stripe first: a Meterline invoice voided or deleted while its Stripe invoice still
            # collects would bill the customer for nothing. A failure changes nothing here.
            self._app_call(inv, action)
        if action == states.Action.DELETE:
            return self._delete(inv, now)
        try:
            return self._drive(inv, now, states.ACTION_TRIGGERS[states.Action(action)])
        except states.TransitionNotAllowed as exc:  # a concurrent move: name the action, not `next`
            raise states.TransitionNotAllowed(exc.state, action) from None

    def _app_call(self, inv: Invoice, action: str) -> None:
        apps = inv.profile.apps if inv.profile else None
        ext = inv.external_ids
        if apps is None or not apps.stripe or ext is None or ext.invoicing is None:
            return  # nothing in Stripe (never synced)
        if self.invoicing is None:
            raise Unavailable(f"invoice [{inv.id}] is in Stripe but no Stripe secret key is configured")
        try:
            if action == states.Action.VOID:
                self.invoicing.void(inv)
            else:
                self.invoicing.delete_draft(inv)
        except InvoicingRejected as exc:
            raise Conflict(
                f"Stripe refused to {action} invoice [{ext.invoicing}]: {exc.message}",
                extended_status=inv.extended_status,
            ) from exc
        except InvoicingUnavailable as exc:
            raise Unavailable(f"{exc}; retry") from exc

    def report_payment(self, invoice_id: str, status: str) -> Invoice:
        """An external-invoicing integration reports the payment (product.md §19.3: mandatory once in
        payment processing): `paid`, `payment_failed`, `payment_uncollectible`, `payment_overdue`,
        `action_required` or `void`. 409 naming the state when the state machine refuses it."""
        inv = self.repo.get(invoice_id)
        if inv is None:
            raise NotFound(f"Invoice [{invoice_id}] not found")
        apps = inv.profile.apps if inv.profile else None
        if apps is None or apps.payment_type is not AppType.EXTERNAL_INVOICING:
            kind = apps.payment_type.value if apps else "no"
            raise Conflict(
                f"invoice [{invoice_id}] is collected by the {kind} app: its payment status is not "
                "reported externally",
                extended_status=inv.extended_status,
            )
        return self._report(inv, PAYMENT_TRIGGERS[status], status)

    def _report(self, inv: Invoice, trigger: str, name: str) -> Invoice:
        """The payment app's outcome through the state machine (the path external invoicing and
        Stripe share): 409 naming the state and `name` when it refuses."""
        now = self.now_for(inv.customer_id)
        try:
            states.transition(inv.extended_status, trigger, inv.facts(now))
            return self._drive(inv, now, trigger)
        except states.TransitionNotAllowed as exc:  # named as reported (`payment_overdue`, not `overdue`)
            raise states.TransitionNotAllowed(exc.state, name) from None

    def apply_app_event(
        self, event_id: str, event_type: str, app_invoice_id: str, invoice_id: str | None
    ) -> tuple[str, Invoice | None]:
        """A Stripe invoice event (its webhook, signature verified by the caller): `invoice.paid` ->
        paid, `invoice.payment_failed`, `invoice.payment_action_required`,
        `invoice.marked_uncollectible`, `invoice.voided` -> void. The Meterline invoice is the one
        named by the Stripe invoice's metadata (`om_invoice_id`) whose Stripe invoice it is.

        Stripe delivers at least once and not in order, and retries anything but a 2xx: so a
        redelivered event (its id is remembered) or one the invoice is already past (paid twice, a
        failure reported after the payment) changes nothing and is answered `ignored`/`unchanged`;
        an event that arrives before the invoice is in payment processing (Stripe paid before the
        finalize was stored) is a 409, and Stripe delivers it again later.
        Returns (`applied` | `unchanged` | `ignored`, the invoice)."""
        trigger = STRIPE_EVENT_TRIGGERS.get(event_type)
        if trigger is None:
            return "ignored", None
        inv = self.repo.get(invoice_id) if invoice_id else None
        ext = inv.external_ids if inv is not None else None
        if inv is None or ext is None or ext.invoicing != app_invoice_id:
            log.info(
                "Stripe event for an invoice that is not Meterline's",
                extra={"stripe_invoice": app_invoice_id},
            )
            return "ignored", None
        if event_id in ext.events:
            return "unchanged", inv
        now = self.now_for(inv.customer_id)
        if not states.can(inv.extended_status, trigger, inv.facts(now)):
            if inv.extended_status in _BEFORE_PAYMENT:
                raise states.TransitionNotAllowed(inv.extended_status, event_type)
            return "unchanged", inv
        seen = replace(ext, events=(*ext.events, event_id)[-_KEPT_EVENTS:])
        return "applied", self._report(replace(inv, external_ids=seen), trigger, event_type)

    def _delete(self, inv: Invoice, now: datetime) -> Invoice:
        """A draft is deleted and its lines go back to the gathering invoice (they bill again)."""
        for _ in range(_ATTEMPTS):
            gatherings = self.repo.gatherings(inv.customer_id)
            gathering = gatherings.get(inv.currency) or Gathering(
                inv.customer_id, inv.currency, self.new_id(), now, now
            )
            entries = dict(gathering.entries)
            for line in inv.lines:
                key = line.key
                entries[key] = g_ops.restored(entries.get(key), line, inv.id)
                if line.late:
                    origin = entries.get(g_ops.origin_key(line))
                    if origin is not None:
                        entries[origin.key] = replace(
                            origin, awaiting=None if origin.awaiting == inv.id else origin.awaiting
                        )
            touched = sorted({x.key for x in inv.lines} | {g_ops.origin_key(x) for x in inv.lines if x.late})
            deleted = self._move(inv, T.DELETE, now)
            try:
                if gathering.rev == 0:
                    gathering = self.repo.save_gathering(gathering, [], [], None)
                saved = self.repo.save(
                    deleted,
                    self._due(deleted, now),
                    gathering=(
                        replace(gathering, updated_at=now),
                        [entries[k] for k in touched if k in entries],
                        g_ops.next_due(entries, now),
                    ),
                )
            except Stale:
                fresh = self.repo.get(inv.id)
                if fresh is None or fresh.rev != inv.rev:
                    raise Conflict(f"Invoice [{inv.id}] changed concurrently; retry") from None
                continue
            return self._publish(saved, now)
        raise Conflict(f"Invoice [{inv.id}] changed concurrently; retry")

    def invoice_now(self, customer_ref: str) -> list[Invoice]:
        """Invoice the customer's pending lines now: due lines, in-advance fees, usage so far."""
        customer_id = self.customers.resolve(customer_ref)
        now = self.now_for(customer_id)
        gatherings = self.sync(customer_id, now)
        created = self._collect(customer_id, now, force=True, known=gatherings)
        if not created:
            raise Conflict(
                f"Customer [{customer_id}] has no pending lines to invoice", code="invoice_create_no_lines"
            )
        return [self._drive(inv, now, gathering=gathering) for inv, gathering in created]
