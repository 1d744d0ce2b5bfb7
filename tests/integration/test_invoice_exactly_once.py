"""Exactly once at the billing edge (the model: test_exactly_once.py, test_credits_exactly_once.py).

One customer per crash point, all with the same billables, usage and credits: the invoice run is
killed right after its k-th DynamoDB write (a botocore `after-call` hook: the write is applied, the
process dies before it learns so), then run again, twice. Every customer must end with the invoice a
clean run makes: the same lines and totals, credits consumed once, one invoice (no duplicate lines),
and the numbers of all the invoices must be gap-free and distinct.

The same clean run measures the DynamoDB requests a five-line invoice costs from collection to
issue (target: under 30).

Charges book their lines from the issued invoice's outbox: the same kill after every write (the
bookings' own included) must leave each charge booked once, with the status a clean run gives.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared import bootstrap
from shared.catalog.models import Commitments
from shared.credits.requests import BalanceQuery
from shared.invoices.service import InvoiceService
from shared.rating.models import Period
from tests.support.harness import Stack
from tests.support.invoices import (
    DEC,
    GRADUATED,
    JAN,
    NOV,
    UNIT_1C,
    Clock,
    FakeSource,
    customer,
    flat_billable,
    install,
    setup_catalog,
    t,
    usage_billable,
)

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
RUN_AT = t("2026-12-01T02:00:00")


class Crash(BaseException):
    """A kill, not an error: the per-customer isolation of a run does not catch it."""


def billables(cid: str) -> list[Any]:
    nov, dec = Period(NOV, DEC), Period(DEC, JAN)
    return [
        usage_billable(cid, "s/default/tokens/v[0]/period[0]", "tokens", UNIT_1C, nov),
        usage_billable(cid, "s/default/calls/v[0]/period[0]", "calls", GRADUATED, nov),
        usage_billable(
            cid, "s/default/storage/v[0]/period[0]", "storage", UNIT_1C, nov, Commitments(minimum=Decimal(20))
        ),
        flat_billable(cid, "s/default/base/v[0]/period[1]", "10", dec),
        flat_billable(cid, "s/default/seats/v[0]/period[1]", "7.5", dec, quantity=2),
    ]


def new_customer(stack: Stack, source: FakeSource, n: int) -> str:
    key = f"c{n}"
    cid = customer(stack, key)
    source.items[cid] = billables(cid)
    events = [
        ("tokens", "2026-11-03T10:00:00Z", 1234),
        ("calls", "2026-11-04T10:00:00Z", 120),
        ("storage", "2026-11-05T10:00:00Z", 700),
    ]
    body = [
        {
            "specversion": "1.0",
            "id": f"{key}-{i}",
            "source": "t",
            "type": typ,
            "subject": key,
            "time": at,
            "data": {"tokens": v},
        }
        for i, (typ, at, v) in enumerate(events)
    ]
    assert stack.ingest(body).status == 202
    stack.drain()
    grant = {
        "name": "promo",
        "funding_method": "none",
        "currency": "USD",
        "amount": "5",
        "effective_at": "2026-11-01T00:00:00Z",
    }
    assert stack.request("POST", f"/customers/{cid}/credits/grants", grant).status == 201
    return cid


# By hand: tokens 1234 x $0.01 = 12.34; calls 100 x 0.10 + 20 x 0.05 = 11.00; storage 700 x $0.01 =
# 7.00 under a $20 minimum: + 13.00 commitment = 20.00; base $10; seats 2 x $7.50 = $15.
# Amount 12.34 + 11 + 7 + 10 + 15 = 55.34, charges 13.00; credits $5 on the first line: 63.34.
EXPECTED = {"amount": "55.34", "charges_total": "13.00", "credits_total": "5.00", "total": "63.34"}


def run(svc: InvoiceService, cid: str, crash_after: int | None = None) -> Counter[str]:
    calls: Counter[str] = Counter()
    writes = [0]

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1
        if model.name in WRITES:
            writes[0] += 1
            if crash_after is not None and writes[0] == crash_after:
                raise Crash(f"after write {crash_after} ({model.name})")

    ddb = svc.repo.client
    ddb.meta.events.register("after-call.dynamodb", hook)
    try:
        svc.run_due([cid], RUN_AT)
    finally:
        ddb.meta.events.unregister("after-call.dynamodb", hook)
    return calls


def outcome(stack: Stack, cid: str) -> dict[str, Any]:
    listed = stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()["data"]
    assert len(listed) == 1, listed  # one invoice: nothing collected twice
    inv = stack.request("GET", f"/invoices/{listed[0]['id']}").json()
    gathering = stack.request("GET", f"/customers/{cid}/invoices/gathering").json()["data"]
    _, balances = bootstrap.credits().balances(
        cid, BalanceQuery(datetime(2026, 12, 2, tzinfo=UTC), None, None)
    )
    return {
        "status": inv["status_details"]["extended_status"],
        "totals": {k: inv["totals"][k] for k in EXPECTED},
        "lines": sorted((x["name"], x["totals"]["total"], x.get("metered_quantity")) for x in inv["lines"]),
        "pending": sum(len(g["lines"]) for g in gathering),
        "credits_left": balances[0].settled if balances else Decimal(0),
        "number": inv["number"],
    }


def test_crash_after_every_write_then_rerun_bills_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_catalog(stack, ("tokens", "calls", "storage"))
    source = FakeSource()
    svc = install(monkeypatch, Clock(RUN_AT), source)

    reference = new_customer(stack, source, 0)
    calls = run(svc, reference)
    truth = outcome(stack, reference)
    assert truth["totals"] == EXPECTED and truth["status"] == "paid"
    assert truth["credits_left"] == Decimal(0) and truth["pending"] == 0
    total_writes = sum(n for op, n in calls.items() if op in WRITES)
    requests = sum(calls.values())
    print(f"clean run, five-line invoice: {requests} DynamoDB requests {dict(calls)}")
    assert requests < 30

    numbers = [truth["number"]]
    for k in range(1, total_writes + 1):
        cid = new_customer(stack, source, k)
        with pytest.raises(Crash):
            run(svc, cid, crash_after=k)
        run(svc, cid)
        run(svc, cid)
        got = outcome(stack, cid)
        numbers.append(got.pop("number"))
        want = {key: value for key, value in truth.items() if key != "number"}
        assert got == want, f"crash after write {k}"
    assert sorted(numbers) == [f"INV-2026-{n:06d}" for n in range(1, total_writes + 2)]


# -- charges book their lines exactly once ----------------------------------------------------------
def charged_customer(stack: Stack, n: int) -> str:
    """A customer with two charges for November: a $10 flat fee and tokens at $0.01 (1234 used)."""
    key = f"ch{n}"
    cid = customer(stack, key)
    nov = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    common = {"currency": "USD", "invoice_at": nov["to"], "service_period": nov}
    fee = {
        **common,
        "type": "flat_fee",
        "name": "Setup",
        "settlement_mode": "credit_then_invoice",
        "payment_term": "in_arrears",
        "proration_configuration": {"mode": "no_proration"},
        "amount_before_proration": {"amount": "10", "currency": "USD"},
    }
    used = {
        **common,
        "type": "usage_based",
        "name": "Tokens",
        "settlement_mode": "credit_then_invoice",
        "feature_key": "tokens",
        "price": {"type": "unit", "amount": "0.01"},
    }
    for body in (fee, used):
        assert stack.request("POST", f"/customers/{cid}/charges", body).status == 201
    event = {
        "specversion": "1.0",
        "id": f"{key}-t",
        "source": "t",
        "type": "tokens",
        "subject": key,
        "time": "2026-11-03T10:00:00Z",
        "data": {"tokens": 1234},
    }
    assert stack.ingest([event]).status == 202
    stack.drain()
    return cid


def booked(stack: Stack, cid: str) -> list[tuple[Any, ...]]:
    """Per charge: name, status and booked totals as the API shows them (flat fees show none), and as
    stored: the booked total and how many lines were booked."""
    charges = stack.request("GET", f"/customers/{cid}/charges").json()["data"]
    stored = {c.id: (c.booked.total, len(c.bookings)) for c in bootstrap.charges().repo.list_for(cid)}
    return sorted(
        (c["name"], c["status"], c.get("totals", {}).get("booked"), stored[c["id"]]) for c in charges
    )


def test_charges_book_once_whatever_write_the_run_dies_after(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run books each charge's line from the issued invoice's outbox (shared/charges/booking.py):
    killed after any write (the bookings' own included) and run again, each charge is booked once."""
    setup_catalog(stack, ("tokens",))
    svc = install(monkeypatch, Clock(RUN_AT), FakeSource())
    svc.sources = [bootstrap.charge_billables()]

    reference = charged_customer(stack, 0)
    calls = run(svc, reference)
    truth = booked(stack, reference)
    # By hand: the fee's line $10 (no totals on flat fees in the contract); tokens 1234 x $0.01 = 12.34.
    # Both invoiced to the end of their period and paid (sandbox): final.
    assert [(name, status, kept) for name, status, _, kept in truth] == [
        ("Setup", "final", (Decimal(10), 1)),
        ("Tokens", "final", (Decimal("12.34"), 1)),
    ]
    tokens = truth[1][2]
    assert tokens is not None and (tokens["amount"], tokens["total"]) == ("12.34", "12.34")
    total_writes = sum(n for op, n in calls.items() if op in WRITES)

    for k in range(1, total_writes + 1):
        cid = charged_customer(stack, k)
        with pytest.raises(Crash):
            run(svc, cid, crash_after=k)
        run(svc, cid)
        run(svc, cid)
        assert booked(stack, cid) == truth, f"crash after write {k}"


def test_a_run_dying_after_booking_books_nothing_twice(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed at the `booked` step (every booking written, the outbox not yet cleared): the next run
    replays the outbox, and the charges' bookings are replays that write nothing."""
    setup_catalog(stack, ("tokens",))
    armed = [True]

    def step(name: str) -> None:
        if name == "booked" and armed[0]:
            armed[0] = False
            raise Crash("after booking")

    svc = install(monkeypatch, Clock(RUN_AT), FakeSource(), step=step)
    svc.sources = [bootstrap.charge_billables()]
    cid = charged_customer(stack, 99)
    with pytest.raises(Crash):
        svc.run_due([cid], RUN_AT)
    before = {c.id: c.rev for c in bootstrap.charges().repo.list_for(cid)}
    (entry,) = svc.repo.customer_entries(cid)
    stored = svc.repo.get(entry["id"])
    assert stored is not None and stored.outbox  # died before publishing: the outbox is still there
    svc.run_due([cid], RUN_AT)
    # Setup $10 and tokens 1234 x $0.01 = 12.34, one line each, final; no charge was written again.
    assert [(name, status, kept) for name, status, _, kept in booked(stack, cid)] == [
        ("Setup", "final", (Decimal(10), 1)),
        ("Tokens", "final", (Decimal("12.34"), 1)),
    ]
    assert {c.id: c.rev for c in bootstrap.charges().repo.list_for(cid)} == before
    cleared = svc.repo.get(entry["id"])
    assert cleared is not None and cleared.outbox == () and cleared.extended_status == "paid"
