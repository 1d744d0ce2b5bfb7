"""The pure parts of charges: request parsing (defaults, fingerprints, queries), status over time,
flat-fee proration (the same amount the invoice's rating bills), a charge as a `Billable`, and the
service's real-time totals and idempotent creation over in-memory fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.api.problem import BadRequest
from shared.catalog.models import PaymentTerm, PriceType, TaxBehavior
from shared.charges import requests
from shared.charges.billables import to_billable
from shared.charges.models import (
    Charge,
    ChargeStatus,
    ChargeTaxConfig,
    ChargeTotals,
    ChargeType,
    ProrationMode,
    SettlementMode,
)
from shared.charges.repository import ChargeConflict
from shared.charges.service import ChargeService, amount_after_proration, rating_line
from shared.core.errors import InvalidInput
from shared.invoices.billables import Origin
from shared.rating import rate
from shared.rating.models import Period

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = "01KBQ3Y3X4Z5A6B7C8D9E0F1G2"


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def flat(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "flat_fee",
        "name": "Setup",
        "currency": "USD",
        "invoice_at": iso(T0),
        "service_period": {"from": iso(T0), "to": iso(T0 + timedelta(days=10))},
        "settlement_mode": "credit_then_invoice",
        "payment_term": "in_advance",
        "proration_configuration": {"mode": "prorate_prices"},
        "amount_before_proration": {"amount": "100", "currency": "USD"},
    }
    body.update(overrides)
    return body


def usage(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "usage_based",
        "name": "Runs",
        "currency": "USD",
        "invoice_at": iso(T0 + timedelta(days=31)),
        "service_period": {"from": iso(T0), "to": iso(T0 + timedelta(days=31))},
        "settlement_mode": "credit_then_invoice",
        "feature_key": "runs",
        "price": {"type": "unit", "amount": "0.5"},
    }
    body.update(overrides)
    return body


# -- requests ------------------------------------------------------------------------------------------
def test_periods_default_to_the_service_period() -> None:
    req = requests.create_charge(flat())
    assert req.full_service_period == req.service_period == Period(T0, T0 + timedelta(days=10))
    assert req.billing_period == req.service_period
    assert req.price.type is PriceType.FLAT and req.price.amount == Decimal(100)


def test_billing_period_defaults_to_the_full_service_period() -> None:
    full = {"from": iso(T0), "to": iso(T0 + timedelta(days=31))}
    req = requests.create_charge(flat(full_service_period=full))
    assert req.billing_period == req.full_service_period == Period(T0, T0 + timedelta(days=31))


def test_fingerprint_ignores_key_order_and_sees_every_value() -> None:
    a = requests.create_charge(flat())
    b = requests.create_charge(dict(reversed(list(flat().items()))))
    c = requests.create_charge(flat(name="Setup!"))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_usage_price_is_the_catalogs() -> None:
    tiers = [
        {"up_to_amount": "10", "unit_price": {"type": "unit", "amount": "1"}},
        {"flat_price": {"type": "flat", "amount": "5"}},
    ]
    req = requests.create_charge(usage(price={"type": "graduated", "tiers": tiers}))
    assert req.price.type is PriceType.GRADUATED and req.price.tiers[1].flat == Decimal(5)
    with pytest.raises(InvalidInput) as bad:
        requests.create_charge(usage(price={"type": "graduated", "tiers": list(reversed(tiers))}))
    assert bad.value.fields[0].field == "price.tiers[0].up_to_amount"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"name": "x"}, "type"),
        (flat(type=["flat_fee"]), "type"),
        (flat(type={"a": 1}), "type"),
        (flat(currency="XTS"), "currency"),  # ISO 4217 test code without a minor unit: not invoiceable
        (flat(currency="ABC"), "currency"),  # not ISO 4217
        (flat(discounts={"percentage": True}), "discounts.percentage"),
        (flat(service_period={"from": iso(T0), "to": iso(T0 - timedelta(seconds=1))}), "service_period.to"),
        (flat(service_period={"from": "1900-01-01T00:00:00Z", "to": iso(T0)}), "service_period.from"),
        (flat(billing_period={"from": iso(T0), "to": iso(T0)}), "billing_period.to"),
        (flat(unique_reference_id=""), "unique_reference_id"),
        (flat(unique_reference_id="x" * 257), "unique_reference_id"),
        (usage(invoice_at=iso(T0 + timedelta(days=30))), "invoice_at"),
        (usage(price=[]), "price"),
    ],
)
def test_bad_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises((BadRequest, InvalidInput)) as bad:
        requests.create_charge(body)
    err = bad.value
    named = (
        [p["field"] for p in err.body("t")["invalid_parameters"]]
        if isinstance(err, BadRequest)
        else [f.field for f in err.fields]
    )
    assert field in named


def test_list_query() -> None:
    q = requests.list_charges({"expand[]": "real_time_usage", "filter[status][oeq]": "created,final"})
    assert q.real_time_usage and q.status is not None and q.status.op == "oeq"
    assert q.page.number == 1 and q.sort is None
    assert not requests.list_charges({}).real_time_usage
    assert requests.list_charges({"filter[status]": "active"}).status is not None


# -- status, proration ---------------------------------------------------------------------------------
def charge(**overrides: Any) -> Charge:
    base = Charge(
        id="01KBQ3Y3X4Z5A6B7C8D9E0F1G3",
        customer_id=CUSTOMER,
        type=ChargeType.FLAT_FEE,
        name="Setup",
        currency="USD",
        price=requests.create_charge(flat()).price,
        invoice_at=T0,
        service_period=Period(T0, T0 + timedelta(days=10)),
        full_service_period=Period(T0, T0 + timedelta(days=20)),
        billing_period=Period(T0, T0 + timedelta(days=31)),
        settlement_mode=SettlementMode.CREDIT_THEN_INVOICE,
        created_at=T0,
        updated_at=T0,
        payment_term=PaymentTerm.IN_ADVANCE,
    )
    return replace(base, **overrides)


def test_status_follows_the_service_period_then_booking() -> None:
    c = charge(invoice_at=T0 + timedelta(days=10))
    assert c.status(T0 - timedelta(seconds=1)) is ChargeStatus.CREATED
    assert c.advance_after(T0 - timedelta(seconds=1)) == T0
    assert c.status(T0) is ChargeStatus.ACTIVE and c.advance_after(T0) == T0 + timedelta(days=10)
    final = replace(c, final_at=T0)
    assert final.status(T0 - timedelta(days=1)) is ChargeStatus.FINAL and final.advance_after(T0) is None
    assert replace(final, deleted_at=T0).status(T0) is ChargeStatus.DELETED


def test_proration_by_exact_duration_rounded_to_the_currency() -> None:
    service, full = Period(T0, T0 + timedelta(days=10)), Period(T0, T0 + timedelta(days=30))
    assert amount_after_proration(
        Decimal(100), "USD", service, full, ProrationMode.PRORATE_PRICES
    ) == Decimal("33.33")
    assert amount_after_proration(
        Decimal(100), "JPY", service, full, ProrationMode.PRORATE_PRICES
    ) == Decimal(33)
    assert amount_after_proration(Decimal(100), "USD", service, full, ProrationMode.NO_PRORATION) == Decimal(
        100
    )


@settings(max_examples=60, deadline=None)
@given(
    amount=st.decimals(min_value=0, max_value=10**6, places=2),
    service_days=st.integers(1, 60),
    extra_days=st.integers(0, 60),
    advance=st.booleans(),
    prorate=st.booleans(),
)
def test_amount_after_proration_is_what_the_invoice_rates(
    amount: Decimal, service_days: int, extra_days: int, advance: bool, prorate: bool
) -> None:
    """The charge shows, before discounts, exactly what rating its Billable bills."""
    mode = ProrationMode.PRORATE_PRICES if prorate else ProrationMode.NO_PRORATION
    service = Period(T0, T0 + timedelta(days=service_days))
    full = Period(T0, service.end + timedelta(days=extra_days))
    c = charge(
        price=replace(charge().price, amount=amount),
        service_period=service,
        full_service_period=full,
        proration_mode=mode,
        payment_term=PaymentTerm.IN_ADVANCE if advance else PaymentTerm.IN_ARREARS,
    )
    shown = amount_after_proration(amount, "USD", service, full, mode)
    assert shown <= amount
    assert rate(rating_line(c)).totals.amount == shown


# -- billables -----------------------------------------------------------------------------------------
def test_a_charge_as_a_billable() -> None:
    c = charge(
        tax_config=ChargeTaxConfig(TaxBehavior.EXCLUSIVE, "01KBQ3Y3X4Z5A6B7C8D9E0F1G4"),
        discount_percentage=Decimal(10),
        feature_key="runs",
    )
    b = to_billable(c)
    assert b.key == f"charge/{c.id}" and b.origin == Origin(charge_id=c.id)
    assert (b.service_period, b.billing_period, b.invoice_at) == (c.service_period, c.billing_period, T0)
    assert (
        b.proration is not None and b.proration.full_period == c.full_service_period and b.proration.enabled
    )
    assert b.feature_key is None  # a flat price is not metered, whatever feature it names
    assert b.discounts is not None and b.discounts.percentage == Decimal(10)
    assert b.tax_config is not None and b.tax_config.behavior is TaxBehavior.EXCLUSIVE
    assert to_billable(replace(c, tax_config=ChargeTaxConfig(TaxBehavior.EXCLUSIVE))).tax_config is None


# -- the service over fakes ----------------------------------------------------------------------------
class FakeRepo:
    def __init__(self) -> None:
        self.charges: dict[str, Charge] = {}
        self.refs: dict[tuple[str, str], str] = {}
        self.lose_next_create_to: Charge | None = None  # a concurrent create that wins the reference

    def create(self, c: Charge) -> None:
        if (winner := self.lose_next_create_to) is not None:
            self.lose_next_create_to = None
            self.create(winner)
            raise ChargeConflict("reference taken")
        if c.unique_reference_id and (c.customer_id, c.unique_reference_id) in self.refs:
            raise ChargeConflict("reference taken")
        self.charges[c.id] = c
        if c.unique_reference_id:
            self.refs[(c.customer_id, c.unique_reference_id)] = c.id

    def update(self, c: Charge) -> None:
        if self.charges[c.id].rev != c.rev - 1:
            raise ChargeConflict("changed")
        self.charges[c.id] = c

    def get(self, customer_id: str, charge_id: str) -> Charge | None:
        found = self.charges.get(charge_id)
        return found if found and found.customer_id == customer_id else None

    def customer_of(self, charge_id: str) -> str | None:
        return self.charges[charge_id].customer_id if charge_id in self.charges else None

    def reference_owner(self, customer_id: str, reference: str) -> str | None:
        return self.refs.get((customer_id, reference))

    def list_for(self, customer_id: str) -> list[Charge]:
        return [c for c in self.charges.values() if c.customer_id == customer_id]

    def due_customers(self, until: datetime) -> list[str]:
        return [c.customer_id for c in self.charges.values() if c.pending and c.invoice_at <= until]


class FakeUsage:
    def __init__(self) -> None:
        self.asked: list[Period] = []

    def resolve(self, feature_key: str) -> tuple[str, bool] | None:
        return {"runs": ("F-runs", True), "sso": ("F-sso", False)}.get(feature_key)

    def usage(self, customer_id: str, feature_id: str, period: Period) -> Decimal:
        assert feature_id == "F-runs"
        self.asked.append(period)
        return Decimal(7)


def service(now: datetime) -> tuple[ChargeService, FakeRepo, FakeUsage]:
    repo, meter = FakeRepo(), FakeUsage()

    class Frozen:
        def now(self) -> datetime:
            return now

    svc = ChargeService(repo, lambda c: c == CUSTOMER, lambda t: False, meter, Frozen())  # type: ignore[arg-type]
    return svc, repo, meter


def test_realtime_rates_the_usage_so_far() -> None:
    now = T0 + timedelta(days=3, seconds=30)
    svc, _, meter = service(now)
    state = svc.create(CUSTOMER, requests.create_charge(usage(discounts={"usage": "1"})))
    q = svc.list(CUSTOMER, requests.list_charges({"expand": "real_time_usage"}))
    realtime = q.items[0].realtime
    assert realtime is not None and realtime.total == Decimal(3)  # (7 - 1 free) x 0.5
    # Up to the end of the current minute (usage is counted by the minute).
    assert meter.asked == [Period(T0, T0 + timedelta(days=3, minutes=1))]
    assert state.realtime is None and state.status is ChargeStatus.ACTIVE


def test_realtime_before_the_period_reads_no_usage() -> None:
    svc, _, meter = service(T0 - timedelta(days=1))
    svc.create(CUSTOMER, requests.create_charge(usage()))
    realtime = svc.list(CUSTOMER, requests.list_charges({"expand": "real_time_usage"})).items[0].realtime
    assert realtime == ChargeTotals() and meter.asked == []


def test_create_checks_customer_feature_and_tax_code() -> None:
    svc, repo, _ = service(T0)
    with pytest.raises(InvalidInput) as unknown:
        svc.create("01KBQ3Y3X4Z5A6B7C8D9E0F1G9", requests.create_charge(flat()))
    assert unknown.value.fields[0].field == "customerId" and unknown.value.fields[0].source == "path"
    for body, field in [
        (usage(feature_key="sso"), "feature_key"),
        (flat(feature_key="nope"), "feature_key"),
        (flat(tax_config={"tax_code_id": "01KBQ3Y3X4Z5A6B7C8D9E0F1G4"}), "tax_config.tax_code_id"),
    ]:
        with pytest.raises(InvalidInput) as bad:
            svc.create(CUSTOMER, requests.create_charge(body))
        assert bad.value.fields[0].field == field
    assert repo.charges == {}


def test_a_create_losing_the_reference_race_answers_the_winner() -> None:
    svc, repo, _ = service(T0)
    req = requests.create_charge(flat(unique_reference_id="r1"))
    winner = replace(
        charge(), id="01KBQ3Y3X4Z5A6B7C8D9E0F1G5", unique_reference_id="r1", request_hash=req.fingerprint
    )
    repo.lose_next_create_to = winner
    assert svc.create(CUSTOMER, req).charge.id == winner.id
    assert list(repo.charges) == [winner.id]
    repo.lose_next_create_to = replace(winner, id="01KBQ3Y3X4Z5A6B7C8D9E0F1G6", unique_reference_id="r2")
    with pytest.raises(InvalidInput) as reused:
        svc.create(CUSTOMER, requests.create_charge(flat(unique_reference_id="r2", name="Other")))
    assert reused.value.fields[0].field == "unique_reference_id"
    assert "01KBQ3Y3X4Z5A6B7C8D9E0F1G6" in reused.value.fields[0].reason
