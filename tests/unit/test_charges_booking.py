"""Booking (shared/charges/booking.py): what issued, paid and voided invoices do to a charge's
`totals.booked` and status, over the in-memory fakes of test_charges.py. Numbers worked by hand.

The usage charge: unit price $0.50, 10% discount, service period [T0, T0+31d).
- Progressive line 1, [T0, T0+10d), 40 runs: amount 20.00, discount 2.00, $5 of credits -> total 13.00.
- Closing line 2, [T0+10d, T0+31d), 20 more runs: amount 10.00, discount 1.00, no credits -> 9.00.
- Booked after both: amount 30.00, discounts 3.00, credits 5.00, total 22.00.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from shared.charges import booking, requests
from shared.charges.billables import ChargeBillables, to_billable
from shared.charges.booking import LineEvent
from shared.charges.models import BookingState, Charge, ChargeStatus, ChargeTotals
from shared.charges.service import rating_line
from shared.invoices.models import Invoice, Line
from shared.rating import rate
from shared.rating.models import Period
from tests.unit.test_charges import CUSTOMER, T0, FakeRepo, charge, service, usage

D = Decimal
MID, END = T0 + timedelta(days=10), T0 + timedelta(days=31)


def line(c: Charge, line_id: str, period: Period, quantity: str, pre: str = "0", credits: str = "0") -> Line:
    """The charge's invoice line as the invoice service rates it (the same engine, the same line)."""
    b = to_billable(c)
    rated_as = replace(
        rating_line(c, D(quantity)),
        period=period,
        pre_line_quantity=D(pre),
        split_period=c.service_period if period != c.service_period else None,
        credits=D(credits),
    )
    return Line(
        line_id,
        b.key,
        b,
        period,
        b.invoice_at,
        pre_line_quantity=D(pre),
        quantity=D(quantity),
        rated=rate(rated_as),
        credits=D(credits),
    )


def invoice(invoice_id: str, *lines: Line) -> Invoice:
    return Invoice(invoice_id, CUSTOMER, "USD", "issued", "INV-1", T0, T0, lines=lines)


def usage_charge() -> tuple[ChargeBillables, FakeRepo, Charge]:
    svc, repo, _ = service(T0)
    created = svc.create(CUSTOMER, requests.create_charge(usage(discounts={"percentage": 10}))).charge
    return ChargeBillables(repo, svc), repo, created  # type: ignore[arg-type]


def test_progressive_lines_add_up_and_the_charge_is_final_once_all_are_paid() -> None:
    billables, repo, c = usage_charge()
    first = invoice("INV1", line(c, "L1", Period(T0, MID), "40", credits="5"))
    billables.moved(first, "issued", MID)
    got = repo.charges[c.id]
    assert got.booked == ChargeTotals(
        amount=D("20.00"), discounts_total=D("2.00"), credits_total=D("5.00"), total=D("13.00")
    )
    # Part of the period is still to invoice: active, still a billable, still due.
    assert got.status(MID) is ChargeStatus.ACTIVE and got.pending and got.advance_after(MID) == END
    assert [b.key for b in billables.billables(CUSTOMER, MID)] == [f"charge/{c.id}"]

    billables.moved(first, "paid", MID)
    second = invoice("INV2", line(c, "L2", Period(MID, END), "20", pre="40"))
    billables.moved(second, "issued", END)
    got = repo.charges[c.id]
    # 20.00 + 10.00; 2.00 + 1.00; 5.00 + 0; 13.00 + 9.00.
    assert got.booked == ChargeTotals(
        amount=D("30.00"), discounts_total=D("3.00"), credits_total=D("5.00"), total=D("22.00")
    )
    # The closing line is issued: nothing more to invoice, but its payment is outstanding.
    assert not got.pending and billables.billables(CUSTOMER, END) == []
    assert got.status(END) is ChargeStatus.ACTIVE and got.advance_after(END) is None
    billables.moved(second, "paid", END + timedelta(hours=1))
    got = repo.charges[c.id]
    assert got.status(END) is ChargeStatus.FINAL and got.final_at == END + timedelta(hours=1)
    assert [b.state for b in got.bookings] == [BookingState.PAID, BookingState.PAID]


def test_replays_write_nothing() -> None:
    billables, repo, c = usage_charge()
    inv = invoice("INV1", line(c, "L1", c.service_period, "40", credits="5"))
    for status in ("issued", "issued", "paid", "issued", "paid"):  # a re-run replays the outbox
        billables.moved(inv, status, END)
    got = repo.charges[c.id]
    # Created at rev 0, written twice (issued, then paid); the replays wrote nothing.
    assert got.rev == 2 and len(got.bookings) == 1
    assert got.booked.total == D("13.00") and got.status(END) is ChargeStatus.FINAL


def test_a_voided_invoice_unbooks_its_lines_and_ends_the_charge() -> None:
    billables, repo, c = usage_charge()
    first = invoice("INV1", line(c, "L1", Period(T0, MID), "40", credits="5"))
    second = invoice("INV2", line(c, "L2", Period(MID, END), "20", pre="40"))
    billables.moved(first, "issued", MID)
    billables.moved(first, "paid", MID)
    billables.moved(second, "issued", END)
    billables.moved(second, "voided", END)
    got = repo.charges[c.id]
    # Only the paid first line counts: 20.00 / 2.00 / 5.00 / 13.00. A voided invoice's lines are
    # discarded (never billed again), so the charge's invoicing is over: final.
    assert got.booked == ChargeTotals(
        amount=D("20.00"), discounts_total=D("2.00"), credits_total=D("5.00"), total=D("13.00")
    )
    assert got.status(END) is ChargeStatus.FINAL
    billables.moved(second, "issued", END)  # a stale replay can't book it again
    assert repo.charges[c.id].booked.total == D("13.00")


def test_a_late_line_reopens_the_charge_until_it_is_paid() -> None:
    c = replace(charge(), rev=3)
    totals = ChargeTotals(amount=D(100), total=D(100))
    done = booking.apply(c, [LineEvent("L1", "INV1", totals, True, BookingState.PAID)], T0)
    assert done is not None and done.status(T0) is ChargeStatus.FINAL and done.rev == 4
    late_totals = ChargeTotals(amount=D("1.50"), total=D("1.50"))
    late = booking.apply(done, [LineEvent("L9", "INV3", late_totals, False, BookingState.ISSUED)], MID)
    assert late is not None and late.status(MID) is ChargeStatus.ACTIVE and late.final_at is None
    assert late.booked.total == D("101.50")  # 100 + 1.50
    settled = booking.apply(late, [LineEvent("L9", "INV3", late_totals, False, BookingState.PAID)], END)
    assert settled is not None and settled.final_at == END


def test_other_lines_statuses_and_unknown_charges_are_ignored() -> None:
    billables, repo, c = usage_charge()
    theirs = line(c, "L1", c.service_period, "40")
    sub = replace(
        theirs, billable=replace(theirs.billable, origin=replace(theirs.billable.origin, charge_id=None))
    )
    billables.moved(invoice("INV1", sub), "issued", END)
    billables.moved(invoice("INV1", theirs), "payment_processing.pending", END)
    assert repo.charges[c.id].bookings == () and repo.charges[c.id].rev == 0
    gone = replace(
        theirs, billable=replace(theirs.billable, origin=replace(theirs.billable.origin, charge_id="X"))
    )
    billables.moved(invoice("INV1", gone), "issued", END)  # logged: the invoice's notices still go out
    assert repo.charges[c.id].rev == 0 and list(repo.charges) == [c.id]
