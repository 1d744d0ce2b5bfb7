"""Every action in every state the service reaches: allowed (and where it leads) or a 409 naming the
state. Service level on moto: each state is reached by the real lifecycle (profiles, apps, clock),
not written by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.core.errors import Conflict
from shared.invoices import views
from shared.invoices.models import Invoice
from shared.invoices.service import InvoiceService
from shared.rating.models import Period
from tests.support.harness import Stack
from tests.support.invoices import (
    DEC,
    JAN,
    NOV,
    UNIT_1C,
    Clock,
    FakeSource,
    customer,
    external_profile,
    flat_billable,
    install,
    setup_catalog,
    t,
    usage_billable,
)

ACTIONS = ("approve", "advance", "retry", "snapshot_quantities", "void", "delete")

# state -> {allowed action: the state it leads to}; every other action is refused with a 409.
EXPECTED: dict[str, dict[str, str]] = {
    "draft.waiting_for_collection": {"snapshot_quantities": "paid", "delete": "deleted"},
    # (these two run on an external-invoicing profile: payment waits for the integrator)
    "draft.manual_approval_needed": {"approve": "payment_processing.pending", "delete": "deleted"},
    # advance only once draft_until has passed (the next step is then automatic); before, approve is
    # how a person issues early (engine-rules §2.9)
    "draft.waiting_auto_approval": {"approve": "payment_processing.pending", "delete": "deleted"},
    "draft.invalid": {"retry": "draft.invalid", "delete": "deleted"},
    "paid": {},
    "payment_processing.pending": {"void": "voided"},
    "overdue": {"void": "voided"},
    "voided": {},
    "deleted": {},
}


class World:
    def __init__(self, stack: Stack, svc: InvoiceService, source: FakeSource, clock: Clock) -> None:
        self.stack, self.svc, self.source, self.clock = stack, svc, source, clock
        self.n = 0
        self.profiles: dict[str, str] = {}

    def profile(self, name: str, **workflow: object) -> str:
        if name not in self.profiles:
            self.profiles[name] = external_profile(self.stack, name, **workflow)
        return self.profiles[name]

    def invoice(
        self, profile: str | None = None, feature: str = "tokens", at: str = "2026-12-01T02:00:00"
    ) -> Invoice:
        """A customer billed a December fee (and November usage of `feature`), run at `at`."""
        self.n += 1
        cid = customer(self.stack, f"c{self.n}", profile)
        self.source.items[cid] = [
            flat_billable(cid, "s/default/base/v[0]/period[1]", "10", Period(DEC, JAN)),
            usage_billable(cid, "s/default/u/v[0]/period[0]", feature, UNIT_1C, Period(NOV, DEC)),
        ]
        self.clock.at = t(at)
        self.svc.run_due([cid], self.clock.at)
        (found,) = self.svc.list_invoices(_query(cid)).items
        return self.svc.get(found.id)


def _query(cid: str):  # type: ignore[no-untyped-def]
    from shared.api.params import Page
    from shared.invoices.service import InvoiceQuery

    return InvoiceQuery(Page(1, 100), customer_id=cid)


def reach(w: World, state: str) -> Invoice:
    makers: dict[str, Callable[[], Invoice]] = {
        "draft.waiting_for_collection": lambda: w.invoice(at="2026-12-01T00:30:00"),
        "draft.manual_approval_needed": lambda: w.invoice(
            w.profile("Manual", invoicing={"auto_advance": False})
        ),
        "draft.waiting_auto_approval": lambda: w.invoice(
            w.profile("Review", invoicing={"draft_period": "P1D"})
        ),
        "draft.invalid": lambda: w.invoice(feature="no_such_feature"),
        "paid": lambda: w.invoice(),
        "payment_processing.pending": lambda: w.invoice(w.profile("External")),
    }
    if state in makers:
        return makers[state]()
    if state == "overdue":
        inv = w.invoice(w.profile("External"))
        assert inv.due_at is not None
        w.clock.at = inv.due_at + timedelta(minutes=1)
        w.svc.run_due([inv.customer_id], w.clock.at)
        return w.svc.get(inv.id)
    if state == "voided":
        return w.svc.act(reach(w, "payment_processing.pending").id, "void")
    assert state == "deleted"
    inv = reach(w, "draft.waiting_for_collection")
    w.svc.act(inv.id, "delete")
    return w.svc.get(inv.id)


@pytest.mark.parametrize("state", list(EXPECTED))
def test_every_action_in_every_state(stack: Stack, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    setup_catalog(stack)
    source, clock = FakeSource(), Clock(DEC)
    w = World(stack, install(monkeypatch, clock, source), source, clock)
    inv = reach(w, state)
    assert inv.extended_status == state
    for action in ACTIONS:
        if action in EXPECTED[state]:
            continue
        with pytest.raises(Conflict) as refused:
            w.svc.act(inv.id, action)
        assert refused.value.message == f"invoice is in state {state}: {action} is not allowed"
        assert refused.value.conflicting == {"extended_status": state}
    assert w.svc.get(inv.id).extended_status == state  # a refused action changes nothing
    for action, target in EXPECTED[state].items():
        fresh = reach(w, state)
        assert w.svc.act(fresh.id, action).extended_status == target, action


def test_advance_is_offered_once_the_review_window_has_passed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_catalog(stack)
    source, clock = FakeSource(), Clock(DEC)
    w = World(stack, install(monkeypatch, clock, source), source, clock)
    inv = reach(w, "draft.waiting_auto_approval")
    assert inv.draft_until is not None
    clock.at = inv.draft_until  # the run has not moved it yet
    assert "advance" in views.invoice(inv, now=clock.at)["status_details"]["available_actions"]
    assert w.svc.act(inv.id, "advance").extended_status == "payment_processing.pending"


def test_a_deleted_draft_gives_its_lines_back_and_they_bill_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_catalog(stack)
    source, clock = FakeSource(), Clock(DEC)
    w = World(stack, install(monkeypatch, clock, source), source, clock)
    inv = reach(w, "draft.waiting_for_collection")
    w.svc.act(inv.id, "delete")
    (gathering,) = w.svc.gathering_of(inv.customer_id)
    assert sorted(x.key for x in gathering.lines) == sorted(x.key for x in inv.lines)
    clock.at = t("2026-12-01T01:00:00")
    w.svc.run_due([inv.customer_id], clock.at)
    listed = w.svc.list_invoices(_query(inv.customer_id)).items
    assert sorted(i.extended_status for i in listed) == ["deleted", "paid"]
    again = next(w.svc.get(i.id) for i in listed if i.extended_status == "paid")
    assert again.number == "INV-2026-000001"  # a deleted draft never took a number
    assert str(again.totals.total) == "10.00"


def test_the_external_integration_reports_the_payment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_catalog(stack)
    source, clock = FakeSource(), Clock(DEC)
    w = World(stack, install(monkeypatch, clock, source), source, clock)
    path = "/apps/external-invoicing/invoices/{}/payment-status"
    pending = reach(w, "payment_processing.pending")
    assert stack.request("POST", path.format(pending.id), {"trigger": "nope"}).status == 400
    failed = stack.request("POST", path.format(pending.id), {"trigger": "payment_failed"}).json()
    assert failed["status_details"]["extended_status"] == "payment_processing.failed"
    # a retried charge that fails again is a new outcome: accepted, not a 409
    retried = stack.request("POST", path.format(pending.id), {"trigger": "payment_failed"})
    assert retried.status == 200 and retried.json()["status_details"]["extended_status"] == (
        "payment_processing.failed"
    )
    paid = stack.request("POST", path.format(pending.id), {"trigger": "paid"}).json()
    assert paid["status"] == "paid" and paid["paid_at"] == "2026-12-01T02:00:00Z"
    again = stack.request("POST", path.format(pending.id), {"trigger": "paid"})
    assert again.status == 409 and again.json()["extended_status"] == "paid"
    sandbox = reach(w, "paid")  # the sandbox app settles its own invoices
    refused = stack.request("POST", path.format(sandbox.id), {"trigger": "paid"})
    assert refused.status == 409 and "sandbox app" in refused.json()["detail"]
    overdue = reach(w, "overdue")
    gone = stack.request("POST", path.format(overdue.id), {"trigger": "payment_uncollectible"}).json()
    assert gone["status"] == "uncollectible"
