"""The invoice state machine (shared/invoices/states.py), table-driven over every (state, trigger) pair.

ALLOWED is written out by hand from engine-rules §2.9 / product.md §16.2 (not derived from the
module's table): every pair in it must move to its target, every pair outside it must be refused
with a 409 naming the state and the trigger.
"""

from __future__ import annotations

import itertools
import re

import pytest

from shared.core.errors import Conflict
from shared.invoices.states import (
    Action,
    ExtendedStatus,
    Facts,
    Status,
    TransitionNotAllowed,
    Trigger,
    available_actions,
    can,
    failed,
    immutable,
    perform,
    status_of,
    transition,
)

S, T = ExtendedStatus, Trigger
DRAFTS = [s for s in S if s.value.startswith("draft.")]

# What each facts variant enables: a guard is checked both ways below.
DUE = Facts(collection_due=True)
PASSED = Facts(draft_until_passed=True)
MANUAL = Facts(auto_advance=False)
EMPTY = Facts(has_lines=False)
CRITICAL = Facts(has_critical_issues=True)
UNSYNCED = Facts(synced=False)

# (state, trigger) -> target with the default Facts() (nothing due, auto-advance, lines, valid).
ALLOWED: dict[tuple[ExtendedStatus, Trigger], ExtendedStatus] = {
    (S.DRAFT_CREATED, T.NEXT): S.DRAFT_WAITING_FOR_COLLECTION,
    (S.DRAFT_CREATED, T.FAILED): S.DRAFT_INVALID,
    (S.DRAFT_WAITING_FOR_COLLECTION, T.SNAPSHOT_QUANTITIES): S.DRAFT_COLLECTING,
    (S.DRAFT_COLLECTING, T.NEXT): S.DRAFT_VALIDATING,
    (S.DRAFT_COLLECTING, T.FAILED): S.DRAFT_INVALID,
    (S.DRAFT_VALIDATING, T.NEXT): S.DRAFT_SYNCING,
    (S.DRAFT_VALIDATING, T.FAILED): S.DRAFT_INVALID,
    # Not OpenMeter's draft.validating: an invoice is invalid because a line could not be measured or
    # rated, so a retry (after the meter or feature is fixed) must measure again, not re-check the
    # same snapshot.
    (S.DRAFT_INVALID, T.RETRY): S.DRAFT_COLLECTING,
    (S.DRAFT_SYNCING, T.NEXT): S.DRAFT_WAITING_AUTO_APPROVAL,
    (S.DRAFT_SYNCING, T.FAILED): S.DRAFT_SYNC_FAILED,
    (S.DRAFT_SYNC_FAILED, T.RETRY): S.DRAFT_VALIDATING,
    (S.DRAFT_WAITING_AUTO_APPROVAL, T.APPROVE): S.DRAFT_READY_TO_ISSUE,
    (S.DRAFT_MANUAL_APPROVAL_NEEDED, T.APPROVE): S.DRAFT_READY_TO_ISSUE,
    (S.DRAFT_READY_TO_ISSUE, T.NEXT): S.ISSUING_SYNCING,
    # Straight to deleted: no app syncs a deletion, and the delete is one write (no delete.in_progress).
    **{(s, T.DELETE): S.DELETED for s in DRAFTS},
    (S.ISSUING_SYNCING, T.NEXT): S.ISSUED,
    (S.ISSUING_SYNCING, T.FAILED): S.ISSUING_SYNC_FAILED,
    (S.ISSUING_SYNC_FAILED, T.RETRY): S.ISSUING_SYNCING,
    (S.ISSUED, T.NEXT): S.PAYMENT_PENDING,
    (S.ISSUED, T.VOID): S.VOIDED,
    **{
        (s, t): target
        for s in (S.PAYMENT_PENDING, S.PAYMENT_FAILED, S.PAYMENT_ACTION_REQUIRED)
        for t, target in {
            T.PAID: S.PAID,
            T.PAYMENT_FAILED: S.PAYMENT_FAILED,
            T.ACTION_REQUIRED: S.PAYMENT_ACTION_REQUIRED,
            T.OVERDUE: S.OVERDUE,
            T.UNCOLLECTIBLE: S.UNCOLLECTIBLE,
            T.VOID: S.VOIDED,
        }.items()
        if (s, t) != (S.PAYMENT_ACTION_REQUIRED, T.ACTION_REQUIRED)
    },
    (S.OVERDUE, T.PAID): S.PAID,
    (S.OVERDUE, T.UNCOLLECTIBLE): S.UNCOLLECTIBLE,
    (S.OVERDUE, T.VOID): S.VOIDED,
    (S.UNCOLLECTIBLE, T.PAID): S.PAID,
    (S.UNCOLLECTIBLE, T.VOID): S.VOIDED,
}

# Guarded pairs: refused with the default facts, moved with the variant (state, trigger, facts, target).
GUARDED = [
    (S.DRAFT_WAITING_FOR_COLLECTION, T.NEXT, DUE, S.DRAFT_COLLECTING),
    (S.DRAFT_WAITING_AUTO_APPROVAL, T.NEXT, PASSED, S.DRAFT_READY_TO_ISSUE),
]
# Branches: allowed either way, the facts pick the target.
BRANCHES = [
    (S.DRAFT_VALIDATING, T.NEXT, CRITICAL, S.DRAFT_INVALID),
    (S.DRAFT_SYNCING, T.NEXT, MANUAL, S.DRAFT_MANUAL_APPROVAL_NEEDED),
    (S.DRAFT_READY_TO_ISSUE, T.NEXT, EMPTY, S.DELETED),
]
# Held: allowed with the default facts, refused while an integrator's sync hook is pending.
HELD = [(S.DRAFT_SYNCING, T.NEXT), (S.ISSUING_SYNCING, T.NEXT)]
GUARDED_PAIRS = {(s, t) for s, t, _, _ in GUARDED}
REFUSED = [p for p in itertools.product(S, T) if p not in ALLOWED and p not in GUARDED_PAIRS]


def _id(p: tuple[ExtendedStatus, Trigger]) -> str:
    return f"{p[0].value}-{p[1].value}"


def test_the_table_covers_every_pair() -> None:
    assert len(S) == 22 and len(T) == 12
    assert len(ALLOWED) + len(GUARDED_PAIRS) + len(REFUSED) == 22 * 12


@pytest.mark.parametrize(("pair", "target"), list(ALLOWED.items()), ids=[_id(p) for p in ALLOWED])
def test_allowed_pair_moves_to_its_target(
    pair: tuple[ExtendedStatus, Trigger], target: ExtendedStatus
) -> None:
    assert transition(*pair) is target
    assert can(*pair)


@pytest.mark.parametrize("pair", REFUSED, ids=[_id(p) for p in REFUSED])
def test_refused_pair_raises_naming_state_and_trigger(pair: tuple[ExtendedStatus, Trigger]) -> None:
    state, trigger = pair
    # Refused whatever the facts say: no guard opens a pair outside the table.
    for facts in (
        Facts(),
        Facts(collection_due=True, draft_until_passed=True),
        EMPTY,
        CRITICAL,
        MANUAL,
        UNSYNCED,
    ):
        with pytest.raises(TransitionNotAllowed) as caught:
            transition(state, trigger, facts)
        assert str(caught.value) == f"invoice is in state {state.value}: {trigger.value} is not allowed"
        assert isinstance(caught.value, Conflict)
        assert caught.value.conflicting == {"extended_status": state.value}
        assert not can(state, trigger, facts)


@pytest.mark.parametrize(("state", "trigger", "facts", "target"), GUARDED)
def test_guard_refuses_until_its_fact_holds(
    state: ExtendedStatus, trigger: Trigger, facts: Facts, target: ExtendedStatus
) -> None:
    with pytest.raises(
        TransitionNotAllowed, match=re.escape(f"state {state.value}: {trigger.value} is not allowed")
    ):
        transition(state, trigger)
    assert transition(state, trigger, facts) is target


@pytest.mark.parametrize(("state", "trigger", "facts", "target"), BRANCHES)
def test_facts_pick_the_branch(
    state: ExtendedStatus, trigger: Trigger, facts: Facts, target: ExtendedStatus
) -> None:
    assert transition(state, trigger, facts) is target
    assert transition(state, trigger) is ALLOWED[(state, trigger)] != target


@pytest.mark.parametrize(("state", "trigger"), HELD)
def test_a_pending_integrator_sync_holds_next(state: ExtendedStatus, trigger: Trigger) -> None:
    assert can(state, trigger)
    with pytest.raises(TransitionNotAllowed, match=re.escape(f"state {state.value}: next is not allowed")):
        transition(state, trigger, UNSYNCED)
    assert "advance" not in available_actions(state, UNSYNCED)
    assert transition(state, T.FAILED, UNSYNCED) in (S.DRAFT_SYNC_FAILED, S.ISSUING_SYNC_FAILED)


def test_strings_are_accepted_for_state_and_trigger() -> None:
    assert transition("issued", "void") is S.VOIDED
    with pytest.raises(ValueError):
        transition("issued", "explode")


def test_terminal_states_refuse_everything() -> None:
    for state in (S.PAID, S.VOIDED, S.DELETED, S.GATHERING):
        assert not any(can(state, t, Facts(True, True, True, True, False)) for t in T)


# ------------------------------------------------------------------------ simple status, flags


SIMPLE = {
    S.GATHERING: Status.GATHERING,
    **{s: Status.DRAFT for s in DRAFTS},
    S.ISSUING_SYNCING: Status.ISSUING,
    S.ISSUING_SYNC_FAILED: Status.ISSUING,
    S.ISSUED: Status.ISSUED,
    S.PAYMENT_PENDING: Status.PAYMENT_PROCESSING,
    S.PAYMENT_FAILED: Status.PAYMENT_PROCESSING,
    S.PAYMENT_ACTION_REQUIRED: Status.PAYMENT_PROCESSING,
    S.OVERDUE: Status.OVERDUE,
    S.PAID: Status.PAID,
    S.UNCOLLECTIBLE: Status.UNCOLLECTIBLE,
    S.VOIDED: Status.VOIDED,
    S.DELETED: Status.DELETED,
}


@pytest.mark.parametrize("state", list(S))
def test_status_of(state: ExtendedStatus) -> None:
    assert status_of(state) is SIMPLE[state]


@pytest.mark.parametrize("state", list(S))
def test_immutable_and_failed_flags(state: ExtendedStatus) -> None:
    assert immutable(state) is (state is not S.GATHERING and state not in DRAFTS)
    assert failed(state) is (
        state in {S.DRAFT_INVALID, S.DRAFT_SYNC_FAILED, S.ISSUING_SYNC_FAILED, S.PAYMENT_FAILED}
    )


# ------------------------------------------------------------------------ user actions


ACTIONS_NOW: dict[ExtendedStatus, list[str]] = {
    S.GATHERING: [],
    S.DRAFT_CREATED: ["advance", "delete"],
    S.DRAFT_WAITING_FOR_COLLECTION: ["delete", "snapshot_quantities"],
    S.DRAFT_COLLECTING: ["advance", "delete"],
    S.DRAFT_VALIDATING: ["advance", "delete"],
    S.DRAFT_INVALID: ["delete", "retry"],
    S.DRAFT_SYNCING: ["advance", "delete"],
    S.DRAFT_SYNC_FAILED: ["delete", "retry"],
    S.DRAFT_WAITING_AUTO_APPROVAL: ["approve", "delete"],
    S.DRAFT_MANUAL_APPROVAL_NEEDED: ["approve", "delete"],
    S.DRAFT_READY_TO_ISSUE: ["advance", "delete"],
    S.ISSUING_SYNCING: ["advance"],
    S.ISSUING_SYNC_FAILED: ["retry"],
    S.ISSUED: ["advance", "void"],
    S.PAYMENT_PENDING: ["void"],
    S.PAYMENT_FAILED: ["void"],
    S.PAYMENT_ACTION_REQUIRED: ["void"],
    S.OVERDUE: ["void"],
    S.PAID: [],
    S.UNCOLLECTIBLE: ["void"],
    S.VOIDED: [],
    S.DELETED: [],
}


@pytest.mark.parametrize("state", list(S))
def test_available_actions_with_nothing_due(state: ExtendedStatus) -> None:
    assert available_actions(state) == ACTIONS_NOW[state]


def test_advance_appears_once_the_wait_is_over() -> None:
    assert "advance" not in available_actions(S.DRAFT_WAITING_AUTO_APPROVAL)
    assert available_actions(S.DRAFT_WAITING_AUTO_APPROVAL, PASSED) == ["advance", "approve", "delete"]
    assert available_actions(S.DRAFT_WAITING_FOR_COLLECTION, DUE) == [
        "advance",
        "delete",
        "snapshot_quantities",
    ]
    # manual approval never auto-advances, whatever the clock says
    assert "advance" not in available_actions(S.DRAFT_MANUAL_APPROVAL_NEEDED, Facts(True, True, False))


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("action", list(Action))
def test_perform_agrees_with_available_actions(state: ExtendedStatus, action: Action) -> None:
    if action.value in available_actions(state):
        perform(state, action)
    else:
        with pytest.raises(TransitionNotAllowed) as caught:
            perform(state, action)
        assert str(caught.value) == f"invoice is in state {state.value}: {action.value} is not allowed"


def test_advance_is_next_and_the_refusal_names_advance() -> None:
    assert perform(S.ISSUED, Action.ADVANCE) is S.PAYMENT_PENDING
    with pytest.raises(TransitionNotAllowed, match="invoice is in state issued: approve is not allowed"):
        perform(S.ISSUED, Action.APPROVE)
    with pytest.raises(
        TransitionNotAllowed, match=re.escape("state draft.manual_approval_needed: advance is not")
    ):
        perform(S.DRAFT_MANUAL_APPROVAL_NEEDED, Action.ADVANCE)
