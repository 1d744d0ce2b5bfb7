"""Issue 11 end to end on the local stack (`python -m local` in a subprocess), over HTTP only: a customer
on a test clock subscribes mid-month to a monthly plan with an in-advance flat fee, an in-arrears
graduated usage price and a minimum spend; usage is ingested; the clock crosses two period ends; the
three invoices, their lines and totals are the numbers worked out below, and the PDF each invoice
links to (stored in S3) shows the same totals.

Plan "pro", USD, billing cadence P1M, pro-rating on:
  platform  flat 100.00, in advance, P1M
  api_calls graduated, in arrears, P1M: calls 1-1,000 at 0.10, beyond at 0.05; minimum spend 50.00
Clock starts 2026-08-15T00:00Z (mid-month); billing anchor 2026-08-01, so the periods are
  [08-15, 09-01) (17 of August's 31 days), [09-01, 10-01), [10-01, 11-01).
The default profile: collection interval PT1H, auto-advance, draft period P0D (the contract's defaults).

Invoice 1, collected 08-15T01:00 (invoice_at = period start for the in-advance fee, + PT1H):
  platform [08-15, 09-01)  100.00 x 17/31 = 54.8387... -> 54.84
  total 54.84
Invoice 2, collected 09-01T01:00:
  api_calls [08-15, 09-01)  300 calls -> 300 x 0.10 = 30.00
            minimum spend 50.00 - 30.00 = 20.00 (commitment, in charges_total)
  platform  [09-01, 10-01)  100.00 (a whole period: not prorated)
  amount 130.00, charges_total 20.00, total 150.00
Invoice 3, collected 10-01T01:00:
  api_calls [09-01, 10-01)  1,500 calls -> 1,000 x 0.10 + 500 x 0.05 = 100.00 + 25.00 = 125.00
            (>= 50.00: no commitment line)
  platform  [10-01, 11-01)  100.00
  amount 225.00, total 225.00
Event times are before wall time (ingest refuses times more than a day ahead), so the clock runs in
the past; the usage of a period counts once the clock has passed it.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from pypdf import PdfReader

from tests.e2e.client import http_client, iso

pytestmark = pytest.mark.e2e


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_a_mid_month_subscription_is_invoiced_exactly_across_two_period_ends(
    local_stack: dict[str, str],
) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    h = {"Authorization": f"Bearer {local_stack['METERLINE_TOKEN']}", "Content-Type": "application/json"}

    call, _, advance = http_client(local_stack, advance_timeout=60)

    def ingest(n: int, when: datetime, calls: int) -> None:
        event = {
            "specversion": "1.0",
            "id": f"inv-e2e-{n}",
            "source": "e2e",
            "type": "api_call",
            "subject": "acme-a",
            "time": iso(when),
            "data": {"calls": calls},
        }
        resp = requests.post(
            f"{base}/events",
            headers={**h, "Content-Type": "application/cloudevents+json"},
            json=event,
            timeout=30,
        )
        assert resp.status_code == 202, resp.text

    def invoices(cid: str) -> list[dict[str, Any]]:
        body = call("GET", f"/invoices?filter[customer_id]={cid}&sort=created_at")
        return [i for i in body["data"] if i["status"] != "gathering"]

    def invoice_with(cid: str, n: int) -> dict[str, Any]:
        """Wait for the n-th standard invoice to be issued; return it whole."""
        deadline = time.monotonic() + 60
        found = invoices(cid)
        while (
            len(found) < n or found[n - 1]["status"] in ("draft", "issuing")
        ) and time.monotonic() < deadline:
            time.sleep(0.3)
            found = invoices(cid)
        assert len(found) >= n, found
        return call("GET", f"/invoices/{found[n - 1]['id']}")

    def money(totals: dict[str, str]) -> tuple[Decimal, Decimal, Decimal]:
        return Decimal(totals["amount"]), Decimal(totals["charges_total"]), Decimal(totals["total"])

    def lines_by_name(inv: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(ln["name"], ln["period"]["from"]): ln for ln in inv["lines"]}

    def pdf_text(inv: dict[str, Any]) -> str:
        url = inv["documents"]["pdf"]["url"]
        resp = requests.get(url, timeout=30)
        assert resp.status_code == 200 and resp.content.startswith(b"%PDF"), resp.status_code
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(resp.content)).pages)

    # -- set-up over the API -------------------------------------------------------------------------
    apps = {a["type"]: a["id"] for a in call("GET", "/apps")["data"]}
    sandbox = {"id": apps["sandbox"]}
    call(
        "POST",
        "/profiles",
        {
            "name": "Main",
            "default": True,
            "supplier": {
                "name": "Meterline Ltd",
                "tax_id": {"code": "GB123456789"},
                "addresses": {"billing_address": {"country": "GB", "city": "London", "line1": "1 King St"}},
            },
            "workflow": {},
            "apps": {"tax": sandbox, "invoicing": sandbox, "payment": sandbox},
        },
        201,
    )
    meter = call(
        "POST",
        "/meters",
        {
            "key": "api_calls",
            "name": "API calls",
            "aggregation": "sum",
            "event_type": "api_call",
            "value_property": "$.calls",
        },
        201,
    )
    feature = call(
        "POST", "/features", {"key": "api_calls", "name": "API calls", "meter": {"id": meter["id"]}}, 201
    )
    plan = call(
        "POST",
        "/plans",
        {
            "key": "pro",
            "name": "Pro",
            "currency": "USD",
            "billing_cadence": "P1M",
            "phases": [
                {
                    "key": "main",
                    "name": "Main",
                    "rate_cards": [
                        {
                            "key": "platform",
                            "name": "Platform fee",
                            "billing_cadence": "P1M",
                            "payment_term": "in_advance",
                            "price": {"type": "flat", "amount": "100"},
                        },
                        {
                            "key": "api_calls",
                            "name": "API calls",
                            "feature": {"id": feature["id"]},
                            "billing_cadence": "P1M",
                            "price": {
                                "type": "graduated",
                                "tiers": [
                                    {
                                        "up_to_amount": "1000",
                                        "unit_price": {"type": "unit", "amount": "0.10"},
                                    },
                                    {"unit_price": {"type": "unit", "amount": "0.05"}},
                                ],
                            },
                            "commitments": {"minimum_amount": "50"},
                        },
                    ],
                }
            ],
        },
        201,
    )
    call("POST", f"/plans/{plan['id']}/publish")

    clock = call("POST", "/test-clocks", {"frozen_time": iso(at(8, 15))}, 201)
    customer = call(
        "POST",
        "/customers",
        {
            "key": "acme",
            "name": "Acme Inc",
            "currency": "USD",
            "usage_attribution": {"subject_keys": ["acme-a"]},
            "billing_address": {"country": "US", "city": "San Francisco", "line1": "1 Market St"},
            "test_clock_id": clock["id"],
        },
        201,
    )
    cid = customer["id"]
    sub = call(
        "POST",
        "/subscriptions",
        {"customer": {"id": cid}, "plan": {"key": "pro"}, "billing_anchor": iso(at(8, 1))},
        201,
    )
    assert sub["billing_anchor"] == iso(at(8, 1))

    # -- invoice 1: the prorated in-advance fee --------------------------------------------------------
    advance(clock["id"], at(8, 15, 1, 30))
    inv1 = invoice_with(cid, 1)
    assert [(ln["name"], ln["period"]) for ln in inv1["lines"]] == [
        ("Platform fee", {"from": iso(at(8, 15)), "to": iso(at(9, 1))})
    ]
    assert money(inv1["totals"]) == (Decimal("54.84"), 0, Decimal("54.84"))  # 100 x 17/31

    # -- invoice 2: August's usage with its minimum, September's fee -----------------------------------
    ingest(1, at(8, 20), 300)
    advance(clock["id"], at(9, 1, 1, 30))
    inv2 = invoice_with(cid, 2)
    got = lines_by_name(inv2)
    usage = got[("API calls", iso(at(8, 15)))]
    assert Decimal(usage["quantity"]) == 300
    details = {d["category"]: Decimal(d["amount"]) for d in usage["detailed_lines"] if Decimal(d["amount"])}
    assert details == {"regular": Decimal("30.00"), "commitment": Decimal("20.00")}  # 300 x 0.10; 50 - 30
    assert Decimal(got[("Platform fee", iso(at(9, 1)))]["totals"]["total"]) == Decimal("100.00")
    assert money(inv2["totals"]) == (Decimal("130.00"), Decimal("20.00"), Decimal("150.00"))

    # -- invoice 3: September's usage across two tiers, October's fee ----------------------------------
    ingest(2, at(9, 10), 1500)
    advance(clock["id"], at(10, 1, 1, 30))
    inv3 = invoice_with(cid, 3)
    usage = lines_by_name(inv3)[("API calls", iso(at(9, 1)))]
    assert Decimal(usage["quantity"]) == 1500
    assert Decimal(usage["totals"]["total"]) == Decimal("125.00")  # 1,000 x 0.10 + 500 x 0.05
    assert money(inv3["totals"]) == (Decimal("225.00"), 0, Decimal("225.00"))

    # -- numbering, issue, documents -------------------------------------------------------------------
    for inv in (inv1, inv2, inv3):
        assert inv["status"] in ("issued", "payment_processing", "paid"), inv["status_details"]
        assert inv["supplier"]["name"] == "Meterline Ltd" and inv["customer"]["name"] == "Acme Inc"
    numbers = [inv["number"] for inv in (inv1, inv2, inv3)]
    assert len(set(numbers)) == 3 and numbers == sorted(numbers)  # final, gap-free, in order
    for inv, total in ((inv1, "54.84"), (inv2, "150.00"), (inv3, "225.00")):
        text = pdf_text(inv)
        assert inv["number"] in text and "Meterline Ltd" in text and "Acme Inc" in text
        assert total in text, text
    assert "20.00" in pdf_text(inv2)  # the minimum spend line
