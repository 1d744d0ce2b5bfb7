"""The standard invoice's state machine, pure (engine-rules §2.9, the shared invoice spec).

A minimal version the invoice service runs on; `states.py` (the docs helper's, with the full table)
replaces it behind the same two functions:

    next_state(extended_status: str, trigger: str) -> str      # raises Refused
    available_actions(extended_status: str, facts: Facts) -> list[str]   # sorted action names

Triggers are the state machine's (`next`, `needs_approval`, `approve`, `retry`, `failed`,
`snapshot_quantities`, `void`, `delete`, `paid`, `overdue`, `uncollectible`, `action_required`,
`payment_failed`); actions are what the API offers (`approve`, `advance`, `retry`,
`snapshot_quantities`, `void`, `delete`), each mapped to one trigger.

Departures from OpenMeter's table: delete goes straight to `deleted` (no external app to sync the
deletion with); `retry` from `draft.invalid` goes back to `draft.collecting`, so a fixed meter or
feature is measured again (OpenMeter re-validates only).
"""

from __future__ import annotations

from dataclasses import dataclass

DRAFT_STATES = (
    "draft.waiting_for_collection",
    "draft.collecting",
    "draft.validating",
    "draft.invalid",
    "draft.syncing",
    "draft.sync_failed",
    "draft.waiting_auto_approval",
    "draft.manual_approval_needed",
    "draft.ready_to_issue",
)
_PAYMENT = {
    "paid": "paid",
    "payment_failed": "payment_processing.failed",
    "overdue": "overdue",
    "uncollectible": "uncollectible",
    "action_required": "payment_processing.action_required",
    "void": "voided",
}
_DELETE = {"delete": "deleted"}

TRANSITIONS: dict[str, dict[str, str]] = {
    "draft.waiting_for_collection": {"next": "draft.collecting", "snapshot_quantities": "draft.collecting"}
    | _DELETE,
    "draft.collecting": {"next": "draft.validating"} | _DELETE,
    "draft.validating": {"next": "draft.syncing", "failed": "draft.invalid"} | _DELETE,
    "draft.invalid": {"retry": "draft.collecting"} | _DELETE,
    "draft.syncing": {
        "next": "draft.waiting_auto_approval",
        "needs_approval": "draft.manual_approval_needed",
        "failed": "draft.sync_failed",
    }
    | _DELETE,
    "draft.sync_failed": {"retry": "draft.validating"} | _DELETE,
    "draft.waiting_auto_approval": {"next": "draft.ready_to_issue", "approve": "draft.ready_to_issue"}
    | _DELETE,
    "draft.manual_approval_needed": {"approve": "draft.ready_to_issue"} | _DELETE,
    "draft.ready_to_issue": {"next": "issuing.syncing"} | _DELETE,
    "issuing.syncing": {"next": "issued", "failed": "issuing.sync_failed"},
    "issuing.sync_failed": {"retry": "issuing.syncing"},
    "issued": {"next": "payment_processing.pending", "void": "voided"},
    "payment_processing.pending": dict(_PAYMENT),
    "payment_processing.failed": {k: v for k, v in _PAYMENT.items() if k != "payment_failed"},
    "payment_processing.action_required": {k: v for k, v in _PAYMENT.items() if k != "action_required"},
    "overdue": {"paid": "paid", "uncollectible": "uncollectible", "void": "voided"},
    "uncollectible": {"paid": "paid", "void": "voided"},
    "paid": {},
    "voided": {},
    "deleted": {},
}

ACTIONS = {
    "approve": "approve",
    "advance": "next",
    "retry": "retry",
    "snapshot_quantities": "snapshot_quantities",
    "void": "void",
    "delete": "delete",
}

# Where `advance` may skip a wait: the next step is automatic, only not due yet.
_ADVANCEABLE = ("draft.waiting_auto_approval", "draft.ready_to_issue")


class Refused(Exception):
    def __init__(self, extended_status: str, trigger: str) -> None:
        super().__init__(f"invoice is in state {extended_status}: {trigger} is not allowed")
        self.extended_status = extended_status
        self.trigger = trigger


@dataclass(frozen=True)
class Facts:
    """What the available actions depend on beyond the state."""

    collection_reached: bool = False  # collection_at <= now


def next_state(extended_status: str, trigger: str) -> str:
    target = TRANSITIONS.get(extended_status, {}).get(trigger)
    if target is None:
        raise Refused(extended_status, trigger)
    return target


def available_actions(extended_status: str, facts: Facts) -> list[str]:
    out = []
    for action, trigger in ACTIONS.items():
        if trigger not in TRANSITIONS.get(extended_status, {}):
            continue
        if action == "advance" and not (
            extended_status in _ADVANCEABLE
            or (extended_status == "draft.waiting_for_collection" and facts.collection_reached)
        ):
            continue
        out.append(action)
    return sorted(out)


def immutable(extended_status: str) -> bool:
    return extended_status not in DRAFT_STATES and extended_status != "gathering"


def failed(extended_status: str) -> bool:
    return extended_status.endswith(("invalid", "_failed", ".failed"))
