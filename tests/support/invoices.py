"""Invoice test set-up: a fake billable source (hand-made billables, a legitimate double for the
subscription and charge producers), a clock the test moves, a meter + feature + customer with usage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared import bootstrap
from shared.catalog.models import Commitments, PaymentTerm, Price, PriceType, Tier
from shared.invoices.billables import Billable, Origin
from shared.invoices.service import InvoiceService
from shared.rating.models import Period, Proration
from tests.support.billing import app_ids, profile_body
from tests.support.harness import Stack

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
JAN = datetime(2027, 1, 1, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now_for(self, _customer_id: str) -> datetime:
        return self.at


@dataclass
class FakeSource:
    """Returns the billables it holds whose billing period starts at or before `until`."""

    items: dict[str, list[Billable]] = field(default_factory=dict)

    def billables(self, customer_id: str, until: datetime) -> list[Billable]:
        return [b for b in self.items.get(customer_id, []) if b.billing_period.start <= until]

    def customers_to_bill(self, now: datetime) -> Iterable[str]:
        return list(self.items)


def usage_billable(
    cid: str,
    key: str,
    feature: str,
    price: Price,
    period: Period,
    commitments: Commitments | None = None,
) -> Billable:
    return Billable(
        key=key,
        customer_id=cid,
        currency="USD",
        name=key.split("/")[2],
        price=price,
        service_period=period,
        billing_period=period,
        invoice_at=period.end,
        origin=Origin(subscription_id="sub1", phase_key="default", item_key=feature),
        feature_key=feature,
        commitments=commitments,
    )


def flat_billable(
    cid: str, key: str, amount: str, period: Period, full: Period | None = None, quantity: int = 1
) -> Billable:
    return Billable(
        key=key,
        customer_id=cid,
        currency="USD",
        name=key.split("/")[2],
        price=Price(PriceType.FLAT, D(amount)),
        service_period=period,
        billing_period=full or period,
        invoice_at=period.start,
        origin=Origin(subscription_id="sub1", phase_key="default", item_key="base"),
        payment_term=PaymentTerm.IN_ADVANCE,
        proration=Proration(full) if full is not None else None,
        quantity=quantity,
    )


UNIT_1C = Price(PriceType.UNIT, D("0.01"))
GRADUATED = Price(PriceType.GRADUATED, tiers=(Tier(up_to=D(100), unit=D("0.10")), Tier(unit=D("0.05"))))


def setup_catalog(stack: Stack, features: tuple[str, ...] = ("tokens",), **workflow: Any) -> None:
    """A default sandbox profile (workflow overrides), a sum meter per feature on `$.tokens`."""
    body = profile_body(stack, default=True)
    body["workflow"] = workflow
    assert stack.request("POST", "/profiles", body).status == 201
    for key in features:
        meter = stack.request(
            "POST",
            "/meters",
            {"key": key, "name": key, "aggregation": "sum", "event_type": key, "value_property": "$.tokens"},
        )
        assert meter.status == 201, meter
        body = {"key": key, "name": key, "meter": {"id": meter.json()["id"]}}
        feature = stack.request("POST", "/features", body)
        assert feature.status == 201, feature


def external_profile(stack: Stack, name: str = "External", **workflow: Any) -> str:
    ext = app_ids(stack)["external_invoicing"]
    body = profile_body(stack, name=name)
    body["apps"] = {"tax": {"id": ext}, "invoicing": {"id": ext}, "payment": {"id": ext}}
    body["workflow"] = workflow
    resp = stack.request("POST", "/profiles", body)
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def customer(stack: Stack, key: str = "acme", profile_id: str | None = None) -> str:
    resp = stack.request("POST", "/customers", {"key": key, "name": key.title(), "currency": "USD"})
    assert resp.status == 201, resp
    cid = str(resp.json()["id"])
    if profile_id is not None:
        pin = stack.request("PUT", f"/customers/{cid}/billing", {"billing_profile": {"id": profile_id}})
        assert pin.status == 200, pin
    return cid


def usage(stack: Stack, subject: str, feature: str, at: datetime, tokens: int, n: int = 1) -> None:
    events = [
        {
            "specversion": "1.0",
            "id": f"{subject}-{feature}-{at.isoformat()}-{tokens}-{i}",
            "source": "test",
            "type": feature,
            "subject": subject,
            "time": at.isoformat().replace("+00:00", "Z"),
            "data": {"tokens": tokens},
        }
        for i in range(n)
    ]
    assert stack.ingest(events).status == 202
    stack.drain()


def install(
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
    source: FakeSource,
    step: Callable[[str], None] | None = None,
) -> InvoiceService:
    """The service the API and the tests use: this clock, this source."""
    svc = bootstrap.build_invoices(now_for=clock.now_for, sources=[source], step=step)
    monkeypatch.setattr(bootstrap, "invoices", lambda: svc)
    return svc
