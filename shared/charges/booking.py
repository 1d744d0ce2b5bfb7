"""Booking: what an invoice's life does to the charges whose lines it carries (pure).

Invoicing tells charges (the `Bookings` port of `shared/invoices/ports.py`, filled by
`ChargeBillables.moved`) when an invoice carrying their lines is issued, paid or voided. Each line
of a charge is one `Booking`, keyed by the invoice line's id:

- **issued** books the line: its totals as issued (after credits: amount, charges, discounts,
  credits, taxes, total; the contract's totals shape) add to the charge's `totals.booked`. A
  usage-based charge billed progressively has one line per invoiced part of its service period, and
  late usage a line of its own: each books when its invoice is issued, so `booked` adds them up.
- **paid** settles the line (its totals stay booked).
- **voided** un-books the line: its totals leave `booked` (the contract is silent on voids; a voided
  invoice is no longer owed, as a ledger reverses it; the booking is kept, marked voided, so a
  replayed `issued` cannot add it again).
  This engine discards a voided invoice's lines (they are not returned to the gathering invoice), so
  a voided closing line still ends the charge's invoicing: it becomes `final` with what remains
  booked, as a company voiding a charge's invoice would expect (nothing more will be billed for it).

Exactly once: each line moves only forward (issued -> paid | voided; paid -> voided), so the same
event again (a re-run after a crash between booking and clearing the invoice's outbox) or an older
one is a no-op: `apply` returns None, nothing is written.

Status (OpenMeter: "`final` means the required payment lifecycle is complete, not merely that
rating or line creation finished"): a charge is `final` once its closing line (the regular line that
bills up to the end of its service period) is booked and every booked line is settled or voided;
until then it stays `active` (`created` before its service period starts; an overdue or
uncollectible invoice is neither paid nor voided, so its charges stay `active`). A late-usage line
issued after that makes it `active` again until that line is paid or voided.

Why the outbox (and not a call inside `_issue`): the issue's transaction is the invoice's own, and
a charge lives in other items; booking after the issue is stored, from the outbox that is cleared
only once the bookings returned, makes "at least once" the invoice's job and "at most once" the
charge's (the line id), with no cross-item transaction and no second queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shared.charges.models import Booking, BookingState, Charge, ChargeTotals


@dataclass(frozen=True)
class LineEvent:
    """One invoice line of the charge reaching `state`."""

    line_id: str
    invoice_id: str
    totals: ChargeTotals
    closes: bool
    state: BookingState


def apply(charge: Charge, events: Sequence[LineEvent], now: datetime) -> Charge | None:
    """The charge after these events (rev + 1), or None when they change nothing (replays)."""
    bookings = {b.line_id: b for b in charge.bookings}
    changed = False
    for e in events:
        known = bookings.get(e.line_id)
        if known is None:
            # A line is first seen at its issue; a `paid` or `voided` without one (never expected: the
            # same outbox carries the issue first) still records the line, in the state it reached.
            bookings[e.line_id] = Booking(e.line_id, e.invoice_id, e.totals, e.closes, e.state, now)
            changed = True
        elif e.state.rank > known.state.rank:
            bookings[e.line_id] = replace(known, state=e.state)  # its totals are the issued ones
            changed = True
    if not changed:
        return None
    after = replace(charge, bookings=tuple(bookings.values()))
    final = after.closed and all(b.state is not BookingState.ISSUED for b in after.bookings)
    final_at = (charge.final_at or now) if final else None
    return replace(after, final_at=final_at, updated_at=now, rev=charge.rev + 1)
