"""The standard invoice's state machine, the only one: pure, no I/O (engine-rules §2.9, product.md §16.2).

The invoice service (`service.py`), its views and routes all go through this module. An invoice
carries an *extended status* (`ExtendedStatus`, e.g. `draft.waiting_auto_approval`); its simple
status on the wire is the first segment (`status_of`). A trigger (`Trigger`) moves it; guards read a
few `Facts` the caller works out from the invoice and the clock (`Invoice.facts(now)`), so this
module never reads a time or a table.

Transitions (`transition(state, trigger, facts)`; anything not listed is refused with
`TransitionNotAllowed`, a `Conflict` naming the state and the action):

    gathering                        nothing: the staging invoice never advances (collection copies
                                     its lines into a new standard invoice)
    draft.created                    next -> draft.waiting_for_collection; failed -> draft.invalid
                                     (the service's collection writes an invoice already past it)
    draft.waiting_for_collection     next -> draft.collecting, only when facts.collection_due;
                                     snapshot_quantities -> draft.collecting (skip the wait)
    draft.collecting                 next -> draft.validating; failed -> draft.invalid
    draft.validating                 next -> draft.syncing, or draft.invalid when
                                     facts.has_critical_issues; failed -> draft.invalid
    draft.invalid                    retry -> draft.collecting (measured again, see below)
    draft.syncing                    next -> draft.waiting_auto_approval if facts.auto_advance,
                                     else draft.manual_approval_needed, only when facts.synced;
                                     failed -> draft.sync_failed
    draft.sync_failed                retry -> draft.validating
    draft.waiting_auto_approval      next -> draft.ready_to_issue, only when facts.draft_until_passed;
                                     approve -> draft.ready_to_issue (issue before draft_until)
    draft.manual_approval_needed     approve -> draft.ready_to_issue
    draft.ready_to_issue             next -> issuing.syncing, or deleted when the invoice has no
                                     lines (a standard invoice without lines is not issued)
    every draft.* state              delete -> deleted
    issuing.syncing                  next -> issued, only when facts.synced; failed -> issuing.sync_failed
    issuing.sync_failed              retry -> issuing.syncing
    issued                           next -> payment_processing.pending; void -> voided
    payment_processing.pending       paid -> paid; payment_failed -> payment_processing.failed;
                                     action_required -> payment_processing.action_required;
                                     overdue -> overdue; uncollectible -> uncollectible; void -> voided
    payment_processing.failed        paid, action_required, overdue, uncollectible, void (as above);
                                     payment_failed again -> payment_processing.failed (a retried
                                     charge that fails again is reported again)
    payment_processing.action_required
                                     paid, payment_failed, overdue, uncollectible, void (as above)
    overdue                          paid -> paid; uncollectible -> uncollectible; void -> voided
    uncollectible                    paid -> paid; void -> voided
    paid, voided, deleted            terminal

Departures from OpenMeter's table (deliberate):
- `retry` from `draft.invalid` goes back to `draft.collecting`, not `draft.validating`: an invoice is
  invalid because a line could not be measured or rated (a missing feature or meter, usage
  unavailable), and re-validating the same stored snapshot would find the same issues; a retry after
  the cause is fixed must measure again. (`draft.sync_failed` keeps `retry -> draft.validating`: the
  snapshot was fine, the app's sync failed.)
- `delete` goes straight to `deleted`; there is no `delete.in_progress` / `delete.syncing`. Sandbox
  and external invoicing have no delete hook; Stripe's draft is deleted synchronously, before the
  service deletes in one conditional write together with giving the lines back to the gathering
  invoice (a Stripe failure refuses the delete), so an intermediate state could never be observed;
  it would only add a notice.
- `next` from the two syncing states is refused while an external invoicing app's sync hook is
  pending, and for a Stripe invoice until Stripe accepted the sync (`facts.synced` false): the
  integrator, or the service's own Stripe call, moves the invoice on, not the clock, so `advance` is
  not offered there (it would issue without the sync).

User actions (`Action`, the API's `status_details.available_actions`) map onto triggers: approve,
retry, snapshot_quantities, void and delete onto their namesakes, `advance` onto `next`.
`available_actions` lists an action when its trigger would be accepted *now* with these facts;
so `advance` appears only where the next step is automatic and its guard holds (e.g.
draft.waiting_auto_approval once draft_until has passed; before that, `approve` issues early),
never in draft.manual_approval_needed (approval is a person's decision) nor in the payment states
(their moves come from the payment provider, not from the invoice's own schedule).

Immutable: everything past draft (issuing.*, issued, payment states, paid, voided, deleted);
gathering and draft.* can be edited. Failed: draft.invalid,
draft.sync_failed, issuing.sync_failed and payment_processing.failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from shared.core.errors import Conflict


class ExtendedStatus(StrEnum):
    GATHERING = "gathering"
    DRAFT_CREATED = "draft.created"
    DRAFT_WAITING_FOR_COLLECTION = "draft.waiting_for_collection"
    DRAFT_COLLECTING = "draft.collecting"
    DRAFT_VALIDATING = "draft.validating"
    DRAFT_INVALID = "draft.invalid"
    DRAFT_SYNCING = "draft.syncing"
    DRAFT_SYNC_FAILED = "draft.sync_failed"
    DRAFT_WAITING_AUTO_APPROVAL = "draft.waiting_auto_approval"
    DRAFT_MANUAL_APPROVAL_NEEDED = "draft.manual_approval_needed"
    DRAFT_READY_TO_ISSUE = "draft.ready_to_issue"
    ISSUING_SYNCING = "issuing.syncing"
    ISSUING_SYNC_FAILED = "issuing.sync_failed"
    ISSUED = "issued"
    PAYMENT_PENDING = "payment_processing.pending"
    PAYMENT_FAILED = "payment_processing.failed"
    PAYMENT_ACTION_REQUIRED = "payment_processing.action_required"
    OVERDUE = "overdue"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOIDED = "voided"
    DELETED = "deleted"


class Status(StrEnum):
    """The simple status on the wire (`status`)."""

    GATHERING = "gathering"
    DRAFT = "draft"
    ISSUING = "issuing"
    ISSUED = "issued"
    PAYMENT_PROCESSING = "payment_processing"
    OVERDUE = "overdue"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOIDED = "voided"
    DELETED = "deleted"


class Trigger(StrEnum):
    NEXT = "next"
    FAILED = "failed"
    RETRY = "retry"
    APPROVE = "approve"
    DELETE = "delete"
    VOID = "void"
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    OVERDUE = "overdue"
    UNCOLLECTIBLE = "uncollectible"
    ACTION_REQUIRED = "action_required"
    SNAPSHOT_QUANTITIES = "snapshot_quantities"


class Action(StrEnum):
    """What a user may ask for (the API paths spell them with dashes: `snapshot-quantities`)."""

    ADVANCE = "advance"
    APPROVE = "approve"
    DELETE = "delete"
    RETRY = "retry"
    SNAPSHOT_QUANTITIES = "snapshot_quantities"
    VOID = "void"


ACTION_TRIGGERS: dict[Action, Trigger] = {
    Action.ADVANCE: Trigger.NEXT,
    Action.APPROVE: Trigger.APPROVE,
    Action.DELETE: Trigger.DELETE,
    Action.RETRY: Trigger.RETRY,
    Action.SNAPSHOT_QUANTITIES: Trigger.SNAPSHOT_QUANTITIES,
    Action.VOID: Trigger.VOID,
}


@dataclass(frozen=True)
class Facts:
    """What the guards read; the caller derives them from the invoice and its clock.

    The defaults are those of a plain invoice with lines, no validation issues, the profile's
    default auto-advance, no wait elapsed and no integrator's sync pending.
    """

    collection_due: bool = False  # collection_at <= now
    draft_until_passed: bool = False  # draft_until <= now
    auto_advance: bool = True  # the workflow snapshot's auto_advance
    has_lines: bool = True  # at least one line
    has_critical_issues: bool = False  # validation found a `critical` issue
    synced: bool = True  # false while an external invoicing app's sync hook (or Stripe's sync) waits


class TransitionNotAllowed(Conflict):
    """The invoice's state refuses the action: a 409 whose body carries `extended_status`."""

    def __init__(self, state: ExtendedStatus | str, action: str) -> None:
        super().__init__(f"invoice is in state {state}: {action} is not allowed", extended_status=str(state))
        self.state = state
        self.action = action


S = ExtendedStatus
T = Trigger
_Target = ExtendedStatus | Callable[[Facts], ExtendedStatus | None]  # None: the guard refuses


def _when(flag: Callable[[Facts], bool], target: ExtendedStatus) -> _Target:
    return lambda f: target if flag(f) else None


_DRAFT_DELETE: dict[Trigger, _Target] = {T.DELETE: S.DELETED}
_PAYMENT_OUTCOMES: dict[Trigger, _Target] = {
    T.PAID: S.PAID,
    T.PAYMENT_FAILED: S.PAYMENT_FAILED,
    T.ACTION_REQUIRED: S.PAYMENT_ACTION_REQUIRED,
    T.OVERDUE: S.OVERDUE,
    T.UNCOLLECTIBLE: S.UNCOLLECTIBLE,
    T.VOID: S.VOIDED,
}

TRANSITIONS: dict[ExtendedStatus, dict[Trigger, _Target]] = {
    S.GATHERING: {},
    S.DRAFT_CREATED: {T.NEXT: S.DRAFT_WAITING_FOR_COLLECTION, T.FAILED: S.DRAFT_INVALID, **_DRAFT_DELETE},
    S.DRAFT_WAITING_FOR_COLLECTION: {
        T.NEXT: _when(lambda f: f.collection_due, S.DRAFT_COLLECTING),
        T.SNAPSHOT_QUANTITIES: S.DRAFT_COLLECTING,
        **_DRAFT_DELETE,
    },
    S.DRAFT_COLLECTING: {T.NEXT: S.DRAFT_VALIDATING, T.FAILED: S.DRAFT_INVALID, **_DRAFT_DELETE},
    S.DRAFT_VALIDATING: {
        T.NEXT: lambda f: S.DRAFT_INVALID if f.has_critical_issues else S.DRAFT_SYNCING,
        T.FAILED: S.DRAFT_INVALID,
        **_DRAFT_DELETE,
    },
    # Retry measures again (a fixed meter or feature): see the module docstring.
    S.DRAFT_INVALID: {T.RETRY: S.DRAFT_COLLECTING, **_DRAFT_DELETE},
    S.DRAFT_SYNCING: {
        T.NEXT: lambda f: (
            None
            if not f.synced
            else S.DRAFT_WAITING_AUTO_APPROVAL
            if f.auto_advance
            else S.DRAFT_MANUAL_APPROVAL_NEEDED
        ),
        T.FAILED: S.DRAFT_SYNC_FAILED,
        **_DRAFT_DELETE,
    },
    S.DRAFT_SYNC_FAILED: {T.RETRY: S.DRAFT_VALIDATING, **_DRAFT_DELETE},
    S.DRAFT_WAITING_AUTO_APPROVAL: {
        T.NEXT: _when(lambda f: f.draft_until_passed, S.DRAFT_READY_TO_ISSUE),
        T.APPROVE: S.DRAFT_READY_TO_ISSUE,
        **_DRAFT_DELETE,
    },
    S.DRAFT_MANUAL_APPROVAL_NEEDED: {T.APPROVE: S.DRAFT_READY_TO_ISSUE, **_DRAFT_DELETE},
    S.DRAFT_READY_TO_ISSUE: {
        T.NEXT: lambda f: S.ISSUING_SYNCING if f.has_lines else S.DELETED,
        **_DRAFT_DELETE,
    },
    S.ISSUING_SYNCING: {T.NEXT: _when(lambda f: f.synced, S.ISSUED), T.FAILED: S.ISSUING_SYNC_FAILED},
    S.ISSUING_SYNC_FAILED: {T.RETRY: S.ISSUING_SYNCING},
    S.ISSUED: {T.NEXT: S.PAYMENT_PENDING, T.VOID: S.VOIDED},
    S.PAYMENT_PENDING: _PAYMENT_OUTCOMES,
    S.PAYMENT_FAILED: _PAYMENT_OUTCOMES,
    # action_required while already waiting on the customer changes nothing: refused, whereas a
    # repeated payment_failed is a new attempt's outcome.
    S.PAYMENT_ACTION_REQUIRED: {t: s for t, s in _PAYMENT_OUTCOMES.items() if t is not T.ACTION_REQUIRED},
    S.OVERDUE: {T.PAID: S.PAID, T.UNCOLLECTIBLE: S.UNCOLLECTIBLE, T.VOID: S.VOIDED},
    S.UNCOLLECTIBLE: {T.PAID: S.PAID, T.VOID: S.VOIDED},
    S.PAID: {},
    S.VOIDED: {},
    S.DELETED: {},
}
_MUTABLE = frozenset({S.GATHERING} | {s for s in S if s.value.startswith("draft.")})
_FAILED = frozenset({S.DRAFT_INVALID, S.DRAFT_SYNC_FAILED, S.ISSUING_SYNC_FAILED, S.PAYMENT_FAILED})


def status_of(state: ExtendedStatus | str) -> Status:
    """The simple status: the first segment (`draft.collecting` -> draft)."""
    return Status(ExtendedStatus(state).value.split(".", 1)[0])


def _target(state: ExtendedStatus, trigger: Trigger, facts: Facts) -> ExtendedStatus | None:
    target = TRANSITIONS[state].get(trigger)
    if target is None or isinstance(target, ExtendedStatus):
        return target
    return target(facts)


def can(state: ExtendedStatus | str, trigger: Trigger | str, facts: Facts = Facts()) -> bool:
    """Whether `trigger` would be accepted now."""
    return _target(ExtendedStatus(state), Trigger(trigger), facts) is not None


def transition(state: ExtendedStatus | str, trigger: Trigger | str, facts: Facts = Facts()) -> ExtendedStatus:
    """The state `trigger` moves `state` to; `TransitionNotAllowed` (409) when refused."""
    state, trigger = ExtendedStatus(state), Trigger(trigger)
    target = _target(state, trigger, facts)
    if target is None:
        raise TransitionNotAllowed(state, trigger.value)
    return target


def perform(state: ExtendedStatus | str, action: Action | str, facts: Facts = Facts()) -> ExtendedStatus:
    """A user action (API): like `transition`, but a refusal names the action (`advance`, not `next`)."""
    state, action = ExtendedStatus(state), Action(action)
    target = _target(state, ACTION_TRIGGERS[action], facts)
    if target is None:
        raise TransitionNotAllowed(state, action.value)
    return target


def available_actions(state: ExtendedStatus | str, facts: Facts = Facts()) -> list[str]:
    """Sorted names of the actions accepted now (`status_details.available_actions`)."""
    state = ExtendedStatus(state)
    return sorted(a.value for a, t in ACTION_TRIGGERS.items() if _target(state, t, facts) is not None)


def immutable(state: ExtendedStatus | str) -> bool:
    """Past draft: lines and totals are frozen (only void/payment moves remain)."""
    return ExtendedStatus(state) not in _MUTABLE


def failed(state: ExtendedStatus | str) -> bool:
    """A step failed: the invoice waits for `retry` (or, for a payment, the provider's next report)."""
    return ExtendedStatus(state) in _FAILED
