"""What a subscription bills (shared/invoices/lines.py) against engine-rules §2.8 and product.md §11.3.

Every expected period, invoice_at, key and proration fraction is worked out by hand from a calendar
in the comment beside it, not computed by the code under test. 2027 is not a leap year: February has
28 days, March 31, April 30, May 31. Times are midnight UTC unless written otherwise. `rows()` reads
billables back as (key, service period, billing period, invoice_at) tuples, `fraction()` the share of
the full cadence period a flat fee bills (what `shared.rating.proration` multiplies the amount by).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.catalog.models import (
    Addon,
    Commitments,
    InstanceType,
    PaymentTerm,
    Phase,
    Plan,
    Price,
    PriceType,
    RateCard,
    Tier,
)
from shared.invoices.billables import Billable
from shared.invoices.lines import billables_for
from shared.rating.models import EndProrationMode, Period
from shared.rating.proration import prorated
from shared.subscriptions.models import PhaseSpan, QuantitySegment, Subscription, SubscriptionAddon

D = Decimal
SUB = "sub1"
FEATURES = {"feat-tokens": "tokens", "feat-calls": "calls"}


def t(text: str) -> datetime:
    """`03-16` (2027, midnight UTC) or a full ISO date."""
    return datetime.fromisoformat(text if len(text) > 5 else f"2027-{text}").replace(tzinfo=UTC)


def p(start: str, end: str) -> Period:
    return Period(t(start), t(end))


def flat(key: str = "platform", amount: str = "30", cadence: str | None = "P1M", **kw: object) -> RateCard:
    term = kw.pop("payment_term", PaymentTerm.IN_ADVANCE)
    return RateCard(
        key=key,
        name=key.title(),
        price=Price(PriceType.FLAT, amount=D(amount)),
        billing_cadence=cadence,
        payment_term=term,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


GRADUATED = Price(PriceType.GRADUATED, tiers=(Tier(up_to=D(100), unit=D("0.10")), Tier(unit=D("0.05"))))


def usage(key: str = "tokens", cadence: str = "P1M", **kw: object) -> RateCard:
    return RateCard(
        key=key,
        name=key.title(),
        price=kw.pop("price", GRADUATED),  # type: ignore[arg-type]
        feature_id=f"feat-{key}",
        billing_cadence=cadence,
        **kw,  # type: ignore[arg-type]
    )


def plan(*phases: Phase, cadence: str = "P1M", pro_rating: bool = True) -> Plan:
    return Plan(
        id="plan1",
        key="pro",
        version=1,
        name="Pro",
        currency="USD",
        billing_cadence=cadence,
        phases=phases,
        created_at=t("01-01"),
        updated_at=t("01-01"),
        pro_rating_enabled=pro_rating,
    )


def subscription(
    start: str, anchor: str, phases: list[tuple[str, str]], end: str | None = None, cadence: str = "P1M"
) -> Subscription:
    return Subscription(
        id=SUB,
        customer_id="cust1",
        plan_id="plan1",
        plan_key="pro",
        plan_version=1,
        currency="USD",
        billing_cadence=cadence,
        anchor_origin=t(anchor),
        billing_anchor=t(anchor),
        active_from=t(start),
        active_to=t(end) if end else None,
        phases=tuple(PhaseSpan(k, t(s)) for k, s in phases),
        created_at=t(start),
        updated_at=t(start),
    )


def rows(billables: list[Billable]) -> list[tuple[str, Period, Period, datetime]]:
    return [(b.key, b.service_period, b.billing_period, b.invoice_at) for b in billables]


def fraction(b: Billable) -> Decimal:
    """The share of its full cadence period a flat billable bills: prorating 100 (4 decimals)."""
    return prorated(D(1), b.service_period, b.proration, 4)


def only(billables: list[Billable], item: str) -> list[Billable]:
    return [b for b in billables if b.origin.item_key == item]


# -- a mid-month start, anchored on the 1st: in-advance flat, in-arrears graduated with a minimum ----
def test_mid_month_start_on_a_calendar_anchor() -> None:
    minimum = Commitments(minimum=D(10))
    sub = subscription("03-16", "03-01", [("default", "03-16")])
    pl = plan(Phase("default", "Default", (flat(), usage(commitments=minimum))))
    got = billables_for(sub, pl, until=t("06-01"), feature_keys=FEATURES)

    assert rows(only(got, "platform")) == [
        # first period cut to the start: billing period [Mar 16, Apr 1) too; in advance: at its start
        (f"{SUB}/default/platform/v[0]/period[0]", p("03-16", "04-01"), p("03-16", "04-01"), t("03-16")),
        (f"{SUB}/default/platform/v[0]/period[1]", p("04-01", "05-01"), p("04-01", "05-01"), t("04-01")),
        (f"{SUB}/default/platform/v[0]/period[2]", p("05-01", "06-01"), p("05-01", "06-01"), t("05-01")),
    ]
    assert rows(only(got, "tokens")) == [
        # in arrears: max(service end, billing period end) = the period's end
        (f"{SUB}/default/tokens/v[0]/period[0]", p("03-16", "04-01"), p("03-16", "04-01"), t("04-01")),
        (f"{SUB}/default/tokens/v[0]/period[1]", p("04-01", "05-01"), p("04-01", "05-01"), t("05-01")),
        (f"{SUB}/default/tokens/v[0]/period[2]", p("05-01", "06-01"), p("05-01", "06-01"), t("06-01")),
    ]
    first = got[0]
    assert first.proration is not None and first.proration.full_period == p("03-01", "04-01")
    # Mar 16 -> Apr 1 is 16 of March's 31 days: 16/31 = 0.516129... ; $30 * 16/31 = $15.4838... -> $15.48
    assert fraction(first) == D("0.5161")
    assert prorated(D(30), first.service_period, first.proration, 2) == D("15.48")
    assert [fraction(b) for b in got[1:3]] == [D(1), D(1)]  # April and May: whole periods
    tokens = only(got, "tokens")
    # usage is never prorated; the minimum, the price and the feature travel on every period
    assert all(b.proration is None for b in tokens)
    assert all(b.commitments == minimum and b.price == GRADUATED for b in tokens)
    assert all(b.feature_key == "tokens" and b.payment_term is PaymentTerm.IN_ARREARS for b in tokens)
    assert all(b.customer_id == "cust1" and b.currency == "USD" and b.quantity == 1 for b in got)
    assert {(b.origin.subscription_id, b.origin.phase_key, b.origin.addon_id) for b in got} == {
        (SUB, "default", None)
    }


# -- an anchor on the 31st: February clamps to the 28th, March is back on the 31st --------------------
def test_anchor_on_the_31st_clamps_in_february() -> None:
    sub = subscription("01-31", "01-31", [("default", "01-31")])
    pl = plan(Phase("default", "Default", (flat(payment_term=PaymentTerm.IN_ARREARS),)))
    got = billables_for(sub, pl, until=t("04-01"))
    assert rows(got) == [
        # Jan 31 + 1 month = Feb 28 (clamped), + 2 months = Mar 31 (from the anchor, not Mar 28)
        (f"{SUB}/default/platform/v[0]/period[0]", p("01-31", "02-28"), p("01-31", "02-28"), t("02-28")),
        (f"{SUB}/default/platform/v[0]/period[1]", p("02-28", "03-31"), p("02-28", "03-31"), t("03-31")),
        # starts Mar 31 < Apr 1: inside the horizon; Jan 31 + 3 months = Apr 30
        (f"{SUB}/default/platform/v[0]/period[2]", p("03-31", "04-30"), p("03-31", "04-30"), t("04-30")),
    ]
    assert [fraction(b) for b in got] == [D(1)] * 3  # whole periods, however long


# -- trial -> paid in the middle of a billing period ---------------------------------------------------
def test_phase_change_mid_period() -> None:
    setup_in_arrears = flat("onboarding", "50", cadence=None, payment_term=PaymentTerm.IN_ARREARS)
    trial = Phase("trial", "Trial", (usage(price=Price(PriceType.UNIT, amount=D("0.01"))), setup_in_arrears))
    setup = flat("setup", "250", cadence=None)  # one-time, in advance
    paid = Phase("paid", "Paid", (flat(), usage(), setup))
    # Mar 10 + P14D = Mar 24: the trial ends mid-month (anchor on the 1st)
    sub = subscription("03-10", "03-01", [("trial", "03-10"), ("paid", "03-24")])
    got = billables_for(sub, plan(trial, paid), until=t("05-01"), feature_keys=FEATURES)
    assert rows(got) == [
        # trial usage: billing period [Mar 1, Apr 1) cut to the trial [Mar 10, Mar 24): invoiced at its end
        (f"{SUB}/trial/tokens/v[0]/period[0]", p("03-10", "03-24"), p("03-10", "03-24"), t("03-24")),
        # one-time in arrears: the trial's span, invoiced when it ends
        (f"{SUB}/trial/onboarding/v[0]/period[0]", p("03-10", "03-24"), p("03-10", "03-24"), t("03-24")),
        # paid flat: [Mar 24, Apr 1), billing period cut to the phase start, in advance at Mar 24
        (f"{SUB}/paid/platform/v[0]/period[0]", p("03-24", "04-01"), p("03-24", "04-01"), t("03-24")),
        (f"{SUB}/paid/platform/v[0]/period[1]", p("04-01", "05-01"), p("04-01", "05-01"), t("04-01")),
        (f"{SUB}/paid/tokens/v[0]/period[0]", p("03-24", "04-01"), p("03-24", "04-01"), t("04-01")),
        (f"{SUB}/paid/tokens/v[0]/period[1]", p("04-01", "05-01"), p("04-01", "05-01"), t("05-01")),
        # one-time in advance on an open phase: an instant at the phase start
        (f"{SUB}/paid/setup/v[0]/period[0]", p("03-24", "03-24"), p("03-24", "04-01"), t("03-24")),
    ]
    paid_flat = only(got, "platform")[0]
    assert paid_flat.proration is not None and paid_flat.proration.full_period == p("03-01", "04-01")
    # Mar 24 -> Apr 1 is 8 of 31 days: 8/31 = 0.258064... ; $30 * 8/31 = $7.7419... -> $7.74
    assert fraction(paid_flat) == D("0.2581")
    assert prorated(D(30), paid_flat.service_period, paid_flat.proration, 2) == D("7.74")
    assert only(got, "setup")[0].proration is None and only(got, "onboarding")[0].proration is None


def test_one_time_in_arrears_on_an_open_phase_waits_for_its_end() -> None:
    sub = subscription("03-01", "03-01", [("default", "03-01")])
    card = flat("onboarding", "50", cadence=None, payment_term=PaymentTerm.IN_ARREARS)
    assert billables_for(sub, plan(Phase("default", "Default", (card,))), until=t("06-01")) == []
    # ...and bills its span once the subscription ends (canceled Apr 10): invoiced at the end
    ended = subscription("03-01", "03-01", [("default", "03-01")], end="04-10")
    got = billables_for(ended, plan(Phase("default", "Default", (card,))), until=t("05-01"))
    assert rows(got) == [
        (f"{SUB}/default/onboarding/v[0]/period[0]", p("03-01", "04-10"), p("04-01", "04-10"), t("04-10"))
    ]


# -- a cancellation in the middle of April, under both end modes ---------------------------------------
@pytest.mark.parametrize(
    ("mode", "april_fraction", "april_amount"),
    [
        # Apr 1 -> Apr 16 is 15 of April's 30 days: 15/30 = 0.5 -> $30 * 0.5 = $15.00
        (EndProrationMode.BILL_ACTUAL_PERIOD, D("0.5"), D("15.00")),
        # cut short by the subscription's end: charged in full
        (EndProrationMode.BILL_FULL_PERIOD, D(1), D("30.00")),
    ],
)
def test_cancel_mid_period(mode: EndProrationMode, april_fraction: Decimal, april_amount: Decimal) -> None:
    sub = subscription("03-01", "03-01", [("default", "03-01")], end="04-16")
    pl = plan(Phase("default", "Default", (flat(), usage())))
    got = billables_for(sub, pl, until=t("06-01"), end_mode=mode)
    assert rows(got) == [
        (f"{SUB}/default/platform/v[0]/period[0]", p("03-01", "04-01"), p("03-01", "04-01"), t("03-01")),
        # the last period ends at active_to; so does its billing period
        (f"{SUB}/default/platform/v[0]/period[1]", p("04-01", "04-16"), p("04-01", "04-16"), t("04-01")),
        (f"{SUB}/default/tokens/v[0]/period[0]", p("03-01", "04-01"), p("03-01", "04-01"), t("04-01")),
        # in arrears: invoiced at the cancellation, not at the end of April
        (f"{SUB}/default/tokens/v[0]/period[1]", p("04-01", "04-16"), p("04-01", "04-16"), t("04-16")),
    ]
    april = got[1]
    assert april.proration is not None
    assert april.proration.full_period == p("04-01", "05-01")
    assert april.proration.subscription_end == t("04-16") and april.proration.end_mode is mode
    assert fraction(april) == april_fraction
    assert prorated(D(30), april.service_period, april.proration, 2) == april_amount
    assert fraction(got[0]) == D(1)


def test_canceled_before_it_started_bills_nothing() -> None:
    sub = subscription("03-10", "03-01", [("default", "03-10")], end="03-10")
    assert billables_for(sub, plan(Phase("default", "Default", (flat(),))), until=t("06-01")) == []


def test_pro_rating_disabled_travels_on_the_proration() -> None:
    sub = subscription("03-16", "03-01", [("default", "03-16")])
    got = billables_for(sub, plan(Phase("default", "Default", (flat(),)), pro_rating=False), until=t("04-01"))
    assert got[0].proration is not None and got[0].proration.enabled is False
    assert fraction(got[0]) == D(1)  # the full $30 for 16 days


# -- a P1D card under a P1M plan: daily lines, one invoice at the month's end --------------------------
def test_daily_card_under_a_monthly_plan() -> None:
    daily_fee = flat("daily", "1", cadence="P1D")  # in advance
    sub = subscription("02-01", "02-01", [("default", "02-01")])
    pl = plan(Phase("default", "Default", (usage("calls", cadence="P1D"), daily_fee)))
    got = billables_for(sub, pl, until=t("03-01"), feature_keys=FEATURES)
    calls, fees = only(got, "calls"), only(got, "daily")
    assert len(calls) == 28 and len(fees) == 28  # February 2027: 28 days
    feb = p("02-01", "03-01")
    assert rows(calls)[0] == (f"{SUB}/default/calls/v[0]/period[0]", p("02-01", "02-02"), feb, t("03-01"))
    assert rows(calls)[27] == (f"{SUB}/default/calls/v[0]/period[27]", p("02-28", "03-01"), feb, t("03-01"))
    assert {b.invoice_at for b in calls} == {t("03-01")}  # all at the month's end
    assert all(b.billing_period == feb for b in got)
    # in advance: the whole month's daily fees at the billing period's start
    assert {b.invoice_at for b in fees} == {t("02-01")}
    assert rows(fees)[3][1] == p("02-04", "02-05") and fees[3].proration is not None
    assert fees[3].proration.full_period == p("02-04", "02-05") and fraction(fees[3]) == D(1)


# -- add-on quantity: 3 seats from Mar 10, 5 from Mar 20, none from Apr 15 ------------------------------
def test_addon_quantity_change_mid_period() -> None:
    seats = Addon(
        id="addonSeats",
        key="seats",
        version=1,
        name="Seats",
        currency="USD",
        instance_type=InstanceType.MULTIPLE,
        rate_cards=(flat("seat", "10"),),
        created_at=t("01-01"),
        updated_at=t("01-01"),
    )
    segments = (
        QuantitySegment(t("03-10"), 3),
        QuantitySegment(t("03-20"), 5),
        QuantitySegment(t("04-15"), 0),
    )
    bought = SubscriptionAddon("sa1", SUB, seats.id, "Seats", segments, t("03-10"), t("03-10"))
    sub = subscription("03-01", "03-01", [("default", "03-01")])
    got = billables_for(sub, plan(Phase("default", "Default", ())), [(bought, seats)], until=t("06-01"))
    key = f"{SUB}/default/addon:addonSeats:seat"
    assert rows(got) == [
        # v0: 3 seats [Mar 10, Mar 20) in March's period[0]; in advance at the segment's start
        (f"{key}/v[0]/period[0]", p("03-10", "03-20"), p("03-01", "04-01"), t("03-10")),
        # v1: 5 seats from Mar 20: the rest of March (same period index), then April up to Apr 15
        (f"{key}/v[1]/period[0]", p("03-20", "04-01"), p("03-01", "04-01"), t("03-20")),
        (f"{key}/v[1]/period[1]", p("04-01", "04-15"), p("04-01", "05-01"), t("04-01")),
        # v2 (0 seats from Apr 15) bills nothing
    ]
    assert [b.quantity for b in got] == [3, 5, 5]
    assert {(b.origin.addon_id, b.origin.item_key) for b in got} == {("addonSeats", "seat")}
    # full periods: March (31 days) and April (30 days)
    # Mar 10 -> 20 = 10/31 = 0.32258 -> 0.3226; Mar 20 -> Apr 1 = 12/31 = 0.38709 -> 0.3871;
    # Apr 1 -> 15 = 14/30 = 0.46666 -> 0.4667 (no subscription end: an add-on segment is always prorated)
    assert [fraction(b) for b in got] == [D("0.3226"), D("0.3871"), D("0.4667")]
    # $10 * 3 seats * 10/31 = $9.677... -> the rating layer multiplies by quantity; per seat $3.23
    assert prorated(D(10), got[0].service_period, got[0].proration, 2) == D("3.23")


# -- idempotence and the horizon ---------------------------------------------------------------------
def test_same_inputs_same_billables() -> None:
    sub = subscription("03-16", "03-01", [("trial", "03-16"), ("paid", "04-16")])
    pl = plan(Phase("trial", "Trial", (usage(),), duration="P1M"), Phase("paid", "Paid", (flat(), usage())))
    first = billables_for(sub, pl, until=t("07-01"), feature_keys=FEATURES)
    again = billables_for(sub, pl, until=t("07-01"), feature_keys=FEATURES)
    assert first == again and len(first) > 0
    assert len({b.key for b in first}) == len(first)  # every key names one billable


@pytest.mark.parametrize(
    ("until", "periods"),
    [
        ("2027-05-01T00:00:00", 2),  # May's period starts at the horizon: not before it
        ("2027-05-01T00:00:00.000001", 3),  # one microsecond later it does
        ("2027-03-16T00:00:00", 0),  # the subscription starts at the horizon: nothing yet
    ],
)
def test_horizon_boundary(until: str, periods: int) -> None:
    sub = subscription("03-16", "03-01", [("default", "03-16")])
    got = billables_for(sub, plan(Phase("default", "Default", (flat(),))), until=t(until))
    assert [b.key for b in got] == [f"{SUB}/default/platform/v[0]/period[{i}]" for i in range(periods)]


def test_free_and_zero_prices_bill_nothing() -> None:
    free = RateCard(key="sso", name="SSO", price=Price(PriceType.FREE), billing_cadence="P1M")
    sub = subscription("03-01", "03-01", [("default", "03-01")])
    pl = plan(Phase("default", "Default", (free, flat("zero", "0"))))
    assert billables_for(sub, pl, until=t("06-01")) == []


def test_a_plan_that_is_not_the_subscriptions_is_refused() -> None:
    sub = subscription("03-01", "03-01", [("default", "03-01")])
    other = plan(Phase("default", "Default", (flat(),)))
    other.id = "plan2"
    with pytest.raises(ValueError, match="plan2"):
        billables_for(sub, other, until=t("06-01"))


def test_an_addon_one_time_fee_bills_once_across_phases_and_quantity_changes() -> None:
    activation = flat("activation", "5", cadence=None)  # one-time, in advance
    boost = Addon(
        id="addonBoost",
        key="boost",
        version=1,
        name="Boost",
        currency="USD",
        instance_type=InstanceType.MULTIPLE,
        rate_cards=(activation,),
        created_at=t("01-01"),
        updated_at=t("01-01"),
    )
    # bought Mar 5 in the trial (2), the paid phase from Mar 15, raised to 4 on Mar 20
    segments = (QuantitySegment(t("03-05"), 2), QuantitySegment(t("03-20"), 4))
    bought = SubscriptionAddon("sa1", SUB, boost.id, "Boost", segments, t("03-05"), t("03-05"))
    sub = subscription("03-01", "03-01", [("trial", "03-01"), ("paid", "03-15")])
    pl = plan(Phase("trial", "Trial", (), duration="P14D"), Phase("paid", "Paid", ()))
    got = billables_for(sub, pl, [(bought, boost)], until=t("06-01"))
    # once: the first segment cut to the trial, [Mar 5, Mar 15), 2 units, in advance at Mar 5; the
    # billing period is March cut to the trial [Mar 1, Mar 15). Not again for the same segment in the
    # paid phase [Mar 15, Mar 20), nor for the 4 units from Mar 20.
    assert rows(got) == [
        (f"{SUB}/trial/addon:addonBoost:activation/v[0]/period[0]", p("03-05", "03-15"), p("03-01", "03-15"),
         t("03-05")),
    ]  # fmt: skip
    assert got[0].quantity == 2


def test_the_rules_load_no_io_module() -> None:
    """Pure like the rating engine: importing them loads nothing that talks to AWS or HTTP."""
    script = "import sys, shared.invoices.lines; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "shared.invoices.lines" in loaded
    forbidden = ("boto3", "botocore", "shared.aws", "shared.api", "shared.settings", "shared.bootstrap")
    assert not {m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)}
