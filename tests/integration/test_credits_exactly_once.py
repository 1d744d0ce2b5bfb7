"""`CreditService.apply` consumes credits exactly once under crashes, retries and races (on moto).

The model is tests/integration/test_exactly_once.py: the invoice side is killed at every step of an
apply (after reading the ledger, before its one write; after the write, before answering), re-run
with the same idempotency key, and the ledger is compared with a ground truth computed by the pure
ledger from the same charges applied once each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared import bootstrap
from shared.credits import ledger
from shared.credits.requests import BalanceQuery
from shared.credits.service import CreditService
from tests.support.harness import Stack

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEPS = ("read", "write")


class Crash(Exception):
    pass


def crash_at(name: str):  # type: ignore[no-untyped-def]
    def step(seen: str) -> None:
        if seen == name:
            raise Crash(seen)

    return step


def setup(stack: Stack) -> tuple[CreditService, str]:
    resp = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"})
    cid = str(resp.json()["id"])
    grants = [("A", "50", 1, "P10D"), ("B", "80", 1, "P20D"), ("C", "100", 2, None)]
    for name, amount, priority, expires in grants:
        body = {
            "name": name,
            "funding_method": "none",
            "currency": "USD",
            "amount": amount,
            "priority": priority,
            "effective_at": "2026-01-01T00:00:00Z",
        }
        if expires:
            body["expires_after"] = expires
        assert stack.request("POST", f"/customers/{cid}/credits/grants", body).status == 201
    return bootstrap.credits(), cid


def settled(service: CreditService, cid: str, at: datetime) -> Decimal:
    _, found = service.balances(cid, BalanceQuery(at, None, None))
    return found[0].settled


# Invoices on days 1..6 (before A expires on day 10) of 45.00 each: more than the credits cover.
CHARGES = [(f"inv-{i}", D("45.00"), T0 + timedelta(days=i)) for i in range(1, 7)]


def truth() -> tuple[list[Decimal], Decimal]:
    """Applied per charge and the balance after them, from the pure ledger (each charge once).
    By hand: 230 of credits; five charges of 45 take 225, the sixth gets the 5 left (C's), 0 remain."""
    blocks = [
        ledger.Block("A", "USD", D(50), 1, T0, 1, expires_at=T0 + timedelta(days=10)),
        ledger.Block("B", "USD", D(80), 1, T0, 2, expires_at=T0 + timedelta(days=20)),
        ledger.Block("C", "USD", D(100), 2, T0, 3),
    ]
    draws: list[ledger.Draw] = []
    applied = []
    for n, (_, amount, at) in enumerate(CHARGES):
        drawn = ledger.burn(blocks, draws, "USD", amount, at)
        draws += [ledger.Draw(f"{n}-{i}", b, a, at, n) for i, (b, a) in enumerate(drawn)]
        applied.append(sum((a for _, a in drawn), D(0)))
    return applied, ledger.balance_at(blocks, draws, "USD", T0 + timedelta(days=7))


def test_truth_by_hand() -> None:
    applied, left = truth()
    assert applied == [D(45)] * 5 + [D(5)] and left == D(0)


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_then_a_rerun_consumes_once(stack: Stack, step: str) -> None:
    service, cid = setup(stack)
    answers = []
    for key, amount, at in CHARGES:
        with pytest.raises(Crash):
            service.apply(cid, "USD", amount, at, key, step=crash_at(step))
        answers.append(service.apply(cid, "USD", amount, at, key))  # the invoice run's retry
        assert service.apply(cid, "USD", amount, at, key) == answers[-1]  # and another
    expected, left = truth()
    assert answers == expected
    assert settled(service, cid, T0 + timedelta(days=7)) == left == D(0)


def test_a_duplicate_racing_the_first_run_consumes_once(stack: Stack) -> None:
    service, cid = setup(stack)
    key, amount, at = CHARGES[0]
    inner: list[Decimal] = []

    def duplicate_runs_now(seen: str) -> None:
        if seen == "read" and not inner:  # between the first run's read and its write
            inner.append(service.apply(cid, "USD", amount, at, key))

    outer = service.apply(cid, "USD", amount, at, key, step=duplicate_runs_now)
    assert outer == inner[0] == D(45)
    assert settled(service, cid, at) == D(230 - 45)


def test_two_invoices_racing_for_the_last_credits_never_overdraw(stack: Stack) -> None:
    service, cid = setup(stack)
    at = T0 + timedelta(days=1)
    assert service.apply(cid, "USD", D(200), at, "big") == D(200)  # 30 left (C's)
    inner: list[Decimal] = []

    def other_invoice_runs_now(seen: str) -> None:
        if seen == "read" and not inner:
            inner.append(service.apply(cid, "USD", D(20), at, "other"))

    # This one read 30 left; the other took 20 before it wrote, so its write loses, it re-reads and
    # takes the 10 that are left: 20 + 10 = 30, never 20 + 25.
    assert service.apply(cid, "USD", D(25), at, "late", step=other_invoice_runs_now) == D(10)
    assert inner == [D(20)]
    assert settled(service, cid, at) == D(0)
