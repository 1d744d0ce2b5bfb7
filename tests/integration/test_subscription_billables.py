"""Subscriptions as a source of billables (shared/invoices/subscription_source.py) on moto: a plan,
an add-on, a customer and a subscription made through the API, read back as the billables invoicing
gets. The rules are unit-tested in tests/unit/test_subscription_billables.py; this checks the reads:
the plan version, the add-on segments, the feature keys, the profile's end-proration mode, and which
customers there is something to bill for.

The subscription starts 2027-03-10 12:00 anchored on Mar 1: a 14-day trial (a volume usage card
`tokens`) until Mar 24 12:00, then paid (flat $99 in advance, graduated `tokens`, a free `sso`, a
one-time in-arrears setup fee); 2 seats of an add-on (flat $99/month in advance) from the start.
"""

from __future__ import annotations

from typing import Any

from shared import bootstrap
from shared.rating.models import EndProrationMode, Period
from tests.support.billing import profile_body
from tests.support.catalog import features, flat_card, full_phases, plan_body
from tests.support.harness import Stack
from tests.support.subscriptions import customer, d, install_clock, subscribe


def p(start: str, end: str) -> Period:
    return Period(d(start), d(end))


def setup(stack: Stack) -> dict[str, Any]:
    clock = install_clock(d("2027-03-09T00:00:00Z"))
    f = features(stack)
    addon = stack.request(
        "POST",
        "/addons",
        {
            "key": "seats",
            "name": "Seats",
            "instance_type": "multiple",
            "currency": "USD",
            "rate_cards": [flat_card("seats")],
        },
    )
    assert addon.status == 201, addon
    addon_id = addon.json()["id"]
    assert stack.request("POST", f"/addons/{addon_id}/publish").status == 200
    plan = stack.request("POST", "/plans", plan_body(phases=full_phases(f))).json()
    link = {"name": "seats", "addon": {"id": addon_id}, "from_plan_phase": "trial", "max_quantity": 10}
    assert stack.request("POST", f"/plans/{plan['id']}/addons", link).status == 201
    assert stack.request("POST", f"/plans/{plan['id']}/publish").status == 200
    a = customer(stack)
    customer(stack, "idle")  # no subscription: nothing to bill
    clock.at = d("2027-03-10T12:00:00Z")
    sub = subscribe(stack, a["id"], billing_anchor="2027-03-01T00:00:00Z")
    assert sub.status == 201, sub
    sub_id = sub.json()["id"]
    seats = stack.request(
        "POST", f"/subscriptions/{sub_id}/addons", {"addon": {"id": addon_id}, "quantity": 2}
    )
    assert seats.status == 201, seats
    return {"clock": clock, "customer": a["id"], "sub": sub_id, "addon": addon_id}


def test_a_subscription_reads_back_as_its_billables(stack: Stack) -> None:
    s = setup(stack)
    source = bootstrap.subscription_billables()
    got = source.billables(s["customer"], until=d("2027-04-30T00:00:00Z"))
    sub, seats = s["sub"], f"addon:{s['addon']}:seats"
    rows = [(b.key, b.service_period, b.invoice_at, b.quantity) for b in got]
    mid, end = "2027-03-10T12:00:00Z", "2027-03-24T12:00:00Z"  # the trial: Mar 10 12:00 + P14D
    assert rows == [
        # trial usage: the billing period cut to the trial, invoiced when it ends
        (f"{sub}/trial/tokens/v[0]/period[0]", p(mid, end), d(end), 1),
        # the add-on in the trial: in advance at its start
        (f"{sub}/trial/{seats}/v[0]/period[0]", p(mid, end), d(mid), 2),
        # paid flat in advance: the rest of March from the phase start, then April on Apr 1
        (f"{sub}/paid/platform/v[0]/period[0]", p(end, "2027-04-01T00:00:00Z"), d(end), 1),
        (f"{sub}/paid/platform/v[0]/period[1]", p("2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z"),
         d("2027-04-01T00:00:00Z"), 1),
        # paid usage in arrears at each billing period's end
        (f"{sub}/paid/tokens/v[0]/period[0]", p(end, "2027-04-01T00:00:00Z"), d("2027-04-01T00:00:00Z"), 1),
        (f"{sub}/paid/tokens/v[0]/period[1]", p("2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z"),
         d("2027-05-01T00:00:00Z"), 1),
        # (sso is free; the one-time setup fee is in arrears of an open phase: not billable yet)
        (f"{sub}/paid/{seats}/v[0]/period[0]", p(end, "2027-04-01T00:00:00Z"), d(end), 2),
        (f"{sub}/paid/{seats}/v[0]/period[1]", p("2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z"),
         d("2027-04-01T00:00:00Z"), 2),
    ]  # fmt: skip
    tokens = [b for b in got if b.origin.item_key == "tokens"]
    assert {b.feature_key for b in tokens} == {"tokens"}  # the feature's key, read from its id
    assert {b.price.type.value for b in tokens} == {"volume", "graduated"}  # each phase its own price
    flat = got[2]
    assert flat.proration is not None and flat.proration.full_period == p(
        "2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z"
    )
    # No billing profile yet: the workflow default
    assert flat.proration.end_mode is EndProrationMode.BILL_ACTUAL_PERIOD
    assert source.billables(s["customer"], until=d("2027-04-30T00:00:00Z")) == got  # a re-run: the same

    profile = profile_body(
        stack, default=True, workflow={"invoicing": {"subscription_end_proration_mode": "bill_full_period"}}
    )
    assert stack.request("POST", "/profiles", profile).status == 201
    again = source.billables(s["customer"], until=d("2027-04-30T00:00:00Z"))
    assert {b.proration.end_mode for b in again if b.proration} == {EndProrationMode.BILL_FULL_PERIOD}
    assert [b.key for b in again] == [b.key for b in got]

    # The horizon is inclusive (the `BillableSource` port): at May 1 00:00 exactly, May's in-advance
    # fee and seats are there, to be collected with April's usage in one invoice.
    may = source.billables(s["customer"], until=d("2027-05-01T00:00:00Z"))
    assert [b.key for b in may if b.service_period.start == d("2027-05-01T00:00:00Z")] == [
        f"{sub}/paid/platform/v[0]/period[2]",
        f"{sub}/paid/tokens/v[0]/period[2]",
        f"{sub}/paid/{seats}/v[0]/period[2]",
    ]


def test_cancellation_ends_the_billables_and_who_is_billed(stack: Stack) -> None:
    s = setup(stack)
    source = bootstrap.subscription_billables()
    assert list(source.customers_to_bill(d("2027-03-10T12:00:00Z"))) == [s["customer"]]  # not "idle"
    canceled = stack.request("POST", f"/subscriptions/{s['sub']}/cancel", {"timing": "next_billing_cycle"})
    assert canceled.status == 200, canceled
    got = source.billables(s["customer"], until=d("2027-06-01T00:00:00Z"))
    # nothing from Apr 1 (the cancellation) on: the paid phase bills [Mar 24 12:00, Apr 1) only
    assert max(b.service_period.end for b in got) == d("2027-04-01T00:00:00Z")
    assert [b.key.split("/", 1)[1] for b in got if b.origin.phase_key == "paid"] == [
        "paid/platform/v[0]/period[0]",
        "paid/tokens/v[0]/period[0]",
        # the one-time setup fee, in arrears: the phase now ends, so it bills its span at the end
        "paid/setup/v[0]/period[0]",
        f"paid/addon:{s['addon']}:seats/v[0]/period[0]",
    ]
    setup_fee = next(b for b in got if b.origin.item_key == "setup")
    assert setup_fee.service_period == p("2027-03-24T12:00:00Z", "2027-04-01T00:00:00Z")
    assert setup_fee.invoice_at == d("2027-04-01T00:00:00Z")
    # ended Apr 1: still a customer of the full sweep within one cadence (its last lines), not after
    assert list(source.every_customer(d("2027-04-30T23:59:59Z"))) == [s["customer"]]
    assert list(source.every_customer(d("2027-05-01T00:00:00Z"))) == []


def test_the_sync_index_holds_who_has_something_to_sync(stack: Stack) -> None:
    """A subscription write makes the customer due at once; a sync moves it to the next service
    period start (`lines.next_start`), or out of the index when none will come; a write between the
    sync's read and its mark keeps it due."""
    s = setup(stack)
    source = bootstrap.subscription_billables()
    cid = s["customer"]
    assert source.customers_to_bill(d("2000-01-01T00:00:00Z")) == [cid]  # written: due whatever the time
    now = d("2027-03-10T13:00:00Z")
    source.billables(cid, now)
    source.synced(cid, now)
    # the next start: the paid phase, Mar 24 12:00 (the trial's cards are monthly from Mar 1)
    assert source.customers_to_bill(d("2027-03-24T11:59:59Z")) == []
    assert source.customers_to_bill(d("2027-03-24T12:00:00Z")) == [cid]
    later = d("2027-03-24T12:10:00Z")
    source.billables(cid, later)
    source.synced(cid, later)
    assert source.customers_to_bill(d("2027-03-31T23:59:59Z")) == []
    assert source.customers_to_bill(d("2027-04-01T00:00:00Z")) == [cid]

    # A write after the read: the mark is refused, the customer stays due.
    apr = d("2027-04-01T00:10:00Z")
    source.billables(cid, apr)
    s["clock"].at = apr
    canceled = stack.request("POST", f"/subscriptions/{s['sub']}/cancel", {"timing": "next_billing_cycle"})
    assert canceled.status == 200, canceled
    source.synced(cid, apr)
    assert source.customers_to_bill(apr) == [cid]
    # Ended May 1: a sync after the last start takes it out of the index.
    source.billables(cid, apr)
    source.synced(cid, apr)
    assert source.customers_to_bill(d("2099-01-01T00:00:00Z")) == []
