"""The invoice state machine, pure (shared/invoices/lifecycle.py)."""

from __future__ import annotations

import pytest

from shared.invoices import lifecycle
from shared.invoices.lifecycle import Facts, Refused, available_actions, next_state


def test_actions_per_state() -> None:
    assert available_actions("draft.waiting_for_collection", Facts()) == ["delete", "snapshot_quantities"]
    assert available_actions("draft.waiting_for_collection", Facts(collection_reached=True)) == [
        "advance",
        "delete",
        "snapshot_quantities",
    ]
    assert available_actions("draft.manual_approval_needed", Facts()) == ["approve", "delete"]
    assert available_actions("draft.waiting_auto_approval", Facts()) == ["advance", "approve", "delete"]
    assert available_actions("draft.invalid", Facts()) == ["delete", "retry"]
    assert available_actions("issuing.sync_failed", Facts()) == ["retry"]
    assert available_actions("payment_processing.pending", Facts()) == ["void"]
    assert available_actions("overdue", Facts()) == ["void"]
    for final in ("paid", "voided", "deleted", "gathering"):
        assert available_actions(final, Facts()) == []


def test_transitions_and_refusals() -> None:
    assert next_state("draft.syncing", "next") == "draft.waiting_auto_approval"
    assert next_state("draft.syncing", "needs_approval") == "draft.manual_approval_needed"
    assert next_state("issued", "next") == "payment_processing.pending"
    assert next_state("payment_processing.pending", "overdue") == "overdue"
    assert next_state("uncollectible", "void") == "voided"
    with pytest.raises(Refused) as refused:
        next_state("issued", "approve")
    assert str(refused.value) == "invoice is in state issued: approve is not allowed"


def test_every_target_is_a_known_state_and_deletes_only_drafts() -> None:
    for source, moves in lifecycle.TRANSITIONS.items():
        for trigger, target in moves.items():
            assert target in lifecycle.TRANSITIONS, (source, trigger)
            if trigger == "delete":
                assert source in lifecycle.DRAFT_STATES
    assert lifecycle.immutable("issued") and not lifecycle.immutable("draft.invalid")
    assert lifecycle.failed("draft.invalid") and lifecycle.failed("issuing.sync_failed")
