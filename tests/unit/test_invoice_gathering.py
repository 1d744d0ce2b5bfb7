"""The gathering bookkeeping (shared/invoices/gathering.py), pure: reconcile, collection with a
progressive split, snapshots, late usage, restoring a deleted draft's lines; and the codec's
round trip. Numbers worked by hand beside each assertion."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from shared.catalog.models import (
    Commitments,
    Discounts,
    PaymentTerm,
    Price,
    PriceType,
    Rounding,
    Tier,
    UnitConfig,
    UnitOperation,
)
from shared.invoices import codec
from shared.invoices import gathering as g
from shared.invoices.billables import Billable, Origin
from shared.invoices.models import GatheringEntry
from shared.rating import rate
from shared.rating.models import BillableLine, Period, Proration

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)
MID = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
JAN = datetime(2027, 1, 1, tzinfo=UTC)
GRADUATED = Price(PriceType.GRADUATED, tiers=(Tier(up_to=D(100), unit=D("0.10")), Tier(unit=D("0.05"))))


def ids() -> itertools.count[int]:
    return itertools.count(1)


def new_id_factory():  # type: ignore[no-untyped-def]
    counter = ids()
    return lambda: f"id{next(counter)}"


NOV_P = Period(NOV, DEC)
DEC_P = Period(DEC, JAN)


def usage(key: str = "s/p/u/v[0]/period[0]", period: Period = NOV_P) -> Billable:
    return Billable(
        key=key,
        customer_id="c",
        currency="USD",
        name="usage",
        price=GRADUATED,
        service_period=period,
        billing_period=period,
        invoice_at=period.end,
        origin=Origin(subscription_id="s"),
        feature_key="tokens",
    )


def fee(key: str = "s/p/f/v[0]/period[1]", period: Period = DEC_P) -> Billable:
    return Billable(
        key=key,
        customer_id="c",
        currency="USD",
        name="fee",
        price=Price(PriceType.FLAT, D(10)),
        service_period=period,
        billing_period=period,
        invoice_at=period.start,
        origin=Origin(subscription_id="s"),
        payment_term=PaymentTerm.IN_ADVANCE,
    )


def apply(entries: dict[str, GatheringEntry], changed: list[GatheringEntry], removed: list[str]) -> None:
    entries.update({e.key: e for e in changed})
    for key in removed:
        entries.pop(key)


def test_reconcile_adds_then_writes_nothing_then_removes_a_vanished_billable() -> None:
    new_id = new_id_factory()
    entries: dict[str, GatheringEntry] = {}
    changed, removed = g.reconcile(entries, [usage(), fee()], new_id)
    assert (
        sorted(e.key for e in changed) == ["s/p/f/v[0]/period[1]", "s/p/u/v[0]/period[0]"] and removed == []
    )
    apply(entries, changed, removed)
    assert g.reconcile(entries, [usage(), fee()], new_id) == ([], [])  # idempotent: nothing to write
    changed, removed = g.reconcile(entries, [usage()], new_id)  # the fee's period was cancelled
    assert changed == [] and removed == ["s/p/f/v[0]/period[1]"]


def test_a_collected_billable_that_comes_back_is_not_pending_again() -> None:
    new_id = new_id_factory()
    entries: dict[str, GatheringEntry] = {}
    apply(entries, *g.reconcile(entries, [fee()], new_id))
    picks = g.collect(entries, DEC, "inv1", new_id)
    assert [p.line.key for p in picks] == ["s/p/f/v[0]/period[1]"]
    for p in picks:
        entries[p.entry.key] = p.entry
    assert entries["s/p/f/v[0]/period[1]"].line is None
    assert g.reconcile(entries, [fee()], new_id) == ([], [])  # billed whole, once
    # ...and when it vanishes now, the entry stays (it was billed): only its pending line would go.
    assert g.reconcile(entries, [], new_id) == ([], [])


def test_invoice_now_splits_usage_at_the_minute_and_the_remainder_continues() -> None:
    new_id = new_id_factory()
    entries: dict[str, GatheringEntry] = {}
    apply(entries, *g.reconcile(entries, [usage()], new_id))
    now = MID.replace(second=40)
    assert g.collect(entries, now, "inv1", new_id) == []  # not due (invoice_at Dec 1), not forced
    (pick,) = g.collect(entries, now, "inv1", new_id, force=True)
    assert pick.line.period == Period(NOV, MID)  # floored to the minute
    assert pick.line.split and pick.entry.line is not None and pick.entry.line.period == Period(MID, DEC)
    assert pick.entry.awaiting == "inv1" and pick.entry.billed_through == MID
    entries[pick.entry.key] = pick.entry
    # Awaiting the first part's snapshot: the remainder can't be collected, even when due.
    assert g.collect(entries, DEC, "inv2", new_id) == []
    # The snapshot measured 150 from Nov 1 to the split: the remainder starts from there.
    entry = g.snapshotted(entries[pick.entry.key], pick.line, D(150), "inv1")
    assert entry.billed == D(150) and entry.awaiting is None and not entry.late_checkable
    assert entry.line is not None and entry.line.pre_line_quantity == D(150)
    # Rated: the first part 100 x 0.10 + 50 x 0.05 = 12.50; the remainder with 100 more continues
    # in tier 2: 100 x 0.05 = 5.00; together the unsplit period's 250 units = 10 + 7.50 = 17.50.
    first = rate(BillableLine("u", "USD", GRADUATED, pick.line.period, D(150), split_period=Period(NOV, DEC)))
    rest = rate(
        BillableLine("u", "USD", GRADUATED, entry.line.period, D(100), D(150), split_period=Period(NOV, DEC))
    )
    whole = rate(BillableLine("u", "USD", GRADUATED, Period(NOV, DEC), D(250)))
    assert (first.totals.total, rest.totals.total, whole.totals.total) == (D("12.50"), D("5.00"), D("17.50"))
    # Once the remainder is collected and measured (cumulative 250), the whole period is billed.
    entries[pick.entry.key] = entry
    (last,) = g.collect(entries, DEC, "inv2", new_id)
    done = g.snapshotted(last.entry, last.line, D(250), "inv2")
    assert done.billed == D(250) and done.late_checkable and done.line is None


def test_late_usage_makes_one_line_per_billed_quantity() -> None:
    new_id = new_id_factory()
    entry = GatheringEntry(
        "k",
        billable=usage("k"),
        billed=D(500),
        billed_through=DEC,
        service_end=DEC,
        feature_key="tokens",
        late_checkable=True,
    )
    entries = {"k": entry}
    assert g.late_candidates(entries, datetime(2026, 12, 2, tzinfo=UTC)) == [entry]
    assert g.late_candidates(entries, datetime(2027, 1, 3, tzinfo=UTC)) == []  # 32 days after Dec 1
    assert g.late_line(entry, D(500), DEC, new_id) is None  # nothing arrived late
    line = g.late_line(entry, D(600), DEC, new_id)
    assert line is not None and line.key == "k/late[500]" and line.late and line.pre_line_quantity == D(500)
    assert line.period == Period(NOV, DEC) and g.origin_key(line) == "k"
    # Rated as a late line: 100 more in tier 2 = 5.00, no minimum spend again.
    rated = rate(BillableLine("u", "USD", GRADUATED, line.period, D(100), D(500), late=True))
    assert rated.totals.total == D("5.00")


def test_late_usage_is_looked_for_on_a_schedule_and_the_head_is_due_at_the_first_of_it() -> None:
    """The head's due entry: the first due line, else the next scheduled late check of a billed
    period (1 h, 6 h, 1, 3, 7, 14, 21, 28 days after its end, and in its window's last hour)."""
    billed = GatheringEntry(
        "k",
        billable=usage("k"),
        billed=D(500),
        billed_through=DEC,
        service_end=DEC,
        feature_key="tokens",
        late_checkable=True,
    )
    entries = {"k": billed}
    at = datetime(2026, 12, 1, 1, 10, tzinfo=UTC)  # the collection's run
    assert g.next_due(entries, at) == datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert g.next_due(entries, datetime(2026, 12, 2, 0, 10, tzinfo=UTC)) == datetime(2026, 12, 4, tzinfo=UTC)
    assert g.next_due(entries, datetime(2026, 12, 29, 0, 10, tzinfo=UTC)) == datetime(
        2027, 1, 1, 23, tzinfo=UTC
    )
    assert g.next_due(entries, datetime(2027, 1, 1, 23, 10, tzinfo=UTC)) is None  # the window closes
    # Waiting for a snapshot, or not a whole billed usage period: no check.
    assert g.next_due({"k": replace(billed, awaiting="inv")}, at) is None
    assert g.next_due({"k": replace(billed, late_checkable=False)}, at) is None
    # A pending line due earlier comes first.
    (pending,) = g.reconcile({}, [usage("n")], new_id_factory())[0]
    assert pending.line is not None and pending.line.invoice_at == DEC
    assert g.next_due({"k": billed, "n": pending}, at) == DEC


def test_restoring_a_deleted_split_part_merges_it_with_its_remainder() -> None:
    new_id = new_id_factory()
    entries: dict[str, GatheringEntry] = {}
    apply(entries, *g.reconcile(entries, [usage()], new_id))
    (pick,) = g.collect(entries, MID, "inv1", new_id, force=True)
    restored = g.restored(pick.entry, pick.line, "inv1")
    assert restored.line is not None and restored.line.period == Period(NOV, DEC)
    assert restored.billed_through is None and restored.billed is None and restored.invoices == []
    assert restored.awaiting is None


def test_the_codec_round_trips_a_rated_line_exactly() -> None:
    b = replace(
        usage(),
        unit_config=UnitConfig(UnitOperation.DIVIDE, D(1000), Rounding.CEILING, 0, "k"),
        discounts=Discounts(percentage=D(10), usage=D(5)),
        commitments=Commitments(minimum=D(20), maximum=D(100)),
    )
    flat = replace(fee(), proration=Proration(Period(DEC, JAN)), quantity=3)
    assert codec.to_billable(codec.billable(b)) == b
    assert codec.to_billable(codec.billable(flat)) == flat
    rated = rate(BillableLine("u", "USD", GRADUATED, Period(NOV, DEC), D("123.456"), discounts=b.discounts))
    assert codec.to_rated(codec.rated(rated)) == rated
