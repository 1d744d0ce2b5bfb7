"""Invoice dicts in the wire shape (notes/invoice-spec.md) for the document tests, totals worked by hand.

`realistic_invoice()` is a November 2026 USD invoice of three lines:

    Platform fee   flat, in advance (December)  1 x 49.00 = 49.00, 10% discount -4.90      -> 44.10
    API calls      graduated, 25,000 calls:     1,000 x 0 + 9,000 x 0.002 + 15,000 x 0.001
                                                = 0.00 + 18.00 + 15.00 = 33.00, credits -5.00 -> 28.00
    Storage        120 GB x 0.25 = 30.00, minimum spend 50.00 -> commitment charge 20.00   -> 50.00

    subtotal (amount) 112.00 + charges 20.00 - discounts 4.90 - credits 5.00 + taxes 0.00 = 122.10
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

NOV = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
DEC = {"from": "2026-12-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
ZERO_TOTALS = {
    "amount": "0",
    "charges_total": "0",
    "discounts_total": "0",
    "credits_total": "0",
    "taxes_inclusive_total": "0",
    "taxes_exclusive_total": "0",
    "taxes_total": "0",
    "total": "0",
}


def totals(**values: str) -> dict[str, str]:
    """Line or invoice totals; `total` is worked out by the spec's formula unless given."""
    out = {**ZERO_TOTALS, **values}
    if "total" not in values:
        d = {k: Decimal(v) for k, v in out.items()}
        out["total"] = str(
            d["amount"]
            + d["charges_total"]
            + d["taxes_exclusive_total"]
            - d["discounts_total"]
            - d["credits_total"]
        )
    return out


def detailed(
    key: str, name: str, quantity: str, unit_price: str, amount: str, category: str = "regular", **extra: Any
) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "category": category,
        "quantity": quantity,
        "unit_price": unit_price,
        "amount": amount,
        "period": extra.pop("period", NOV),
        "discounts": extra.pop("discounts", []),
        "totals": extra.pop("totals", totals(amount=amount)),
    }


def line(
    line_id: str,
    name: str,
    *,
    type_: str = "usage_based",
    period: dict[str, str] = NOV,
    quantity: str = "1",
    details: list[dict[str, Any]] | None = None,
    line_totals: dict[str, str] | None = None,
    discounts: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": line_id,
        "name": name,
        "type": type_,
        "managed_by": "subscription",
        "status": "detailed",
        "period": period,
        "invoice_at": period["to"] if extra.get("payment_term") != "in_advance" else period["from"],
        "late_usage": False,
        "payment_term": extra.pop("payment_term", "in_arrears"),
        "price": extra.pop("price", {"type": "unit", "amount": "1"}),
        "quantity": quantity,
        "discounts": {"amount": discounts or [], "usage": extra.pop("usage_discounts", [])},
        "detailed_lines": details or [],
        "totals": line_totals or totals(),
        **extra,
    }


def realistic_invoice() -> dict[str, Any]:
    lines = [
        line(
            "01JLINE0000000000000000001",
            "Platform fee",
            type_="flat_fee",
            period=DEC,
            payment_term="in_advance",
            price={"type": "flat", "amount": "49.00"},
            per_unit_amount="49.00",
            details=[detailed("platform", "Platform fee", "1", "49.00", "49.00", period=DEC)],
            discounts=[{"reason": "ratecard_percentage", "amount": "4.90", "percentage": "10"}],
            line_totals=totals(amount="49.00", discounts_total="4.90"),
        ),
        line(
            "01JLINE0000000000000000002",
            "API calls",
            feature_key="api_calls",
            price={
                "type": "graduated",
                "tiers": [
                    {"up_to_amount": "1000", "unit_price": {"type": "unit", "amount": "0"}},
                    {"up_to_amount": "10000", "unit_price": {"type": "unit", "amount": "0.002"}},
                    {"unit_price": {"type": "unit", "amount": "0.001"}},
                ],
            },
            quantity="25000",
            metered_quantity="25000",
            details=[
                detailed("tier-1", "API calls: tier 1 (up to 1,000)", "1000", "0", "0.00"),
                detailed("tier-2", "API calls: tier 2 (1,001 to 10,000)", "9000", "0.002", "18.00"),
                detailed("tier-3", "API calls: tier 3 (over 10,000)", "15000", "0.001", "15.00"),
            ],
            line_totals=totals(amount="33.00", credits_total="5.00"),
        ),
        line(
            "01JLINE0000000000000000003",
            "Storage",
            feature_key="storage_gb",
            price={"type": "unit", "amount": "0.25", "commitments": {"minimum_amount": "50.00"}},
            quantity="120",
            metered_quantity="120",
            details=[
                detailed("storage", "Storage", "120", "0.25", "30.00"),
                detailed(
                    "storage-min-spend",
                    "Storage: minimum spend",
                    "1",
                    "20.00",
                    "20.00",
                    category="commitment",
                    totals=totals(charges_total="20.00"),
                ),
            ],
            line_totals=totals(amount="30.00", charges_total="20.00"),
        ),
    ]
    return {
        "id": "01JINV00000000000000000042",
        "type": "standard",
        "number": "NWA-2026-000042",
        "status": "issued",
        "status_details": {
            "immutable": True,
            "failed": False,
            "extended_status": "issued",
            "available_actions": ["advance", "void"],
        },
        "currency": "USD",
        "customer": {
            "id": "01JCUST0000000000000000007",
            "key": "contoso",
            "name": "Contoso Ltd.",
            "primary_email": "ap@contoso.example",
            "billing_address": {
                "line1": "1 Finsbury Avenue",
                "city": "London",
                "postal_code": "EC2M 2PF",
                "country": "GB",
            },
            "tax_id": "GB123456789",
        },
        "supplier": {
            "name": "Northwind Analytics Inc.",
            "tax_id": "US94-1234567",
            "address": {
                "line1": "500 Howard Street",
                "line2": "Suite 300",
                "city": "San Francisco",
                "state": "CA",
                "postal_code": "94105",
                "country": "US",
            },
        },
        "profile": {"id": "01JPROF0000000000000000001", "name": "Default"},
        "workflow": {
            "collection_interval": "PT1H",
            "auto_advance": True,
            "draft_period": "P0D",
            "due_after": "P30D",
            "progressive_billing": True,
            "proration_mode": "bill_actual_period",
            "collection_method": "send_invoice",
        },
        "period": {"from": NOV["from"], "to": DEC["to"]},
        "created_at": "2026-12-01T01:00:00Z",
        "updated_at": "2026-12-01T01:00:05Z",
        "collection_at": "2026-12-01T01:00:00Z",
        "issued_at": "2026-12-01T01:00:05Z",
        "due_at": "2026-12-31T01:00:05Z",
        "lines": lines,
        "totals": totals(
            amount="112.00", charges_total="20.00", discounts_total="4.90", credits_total="5.00"
        ),
        "validation_issues": [],
    }


def many_lines_invoice(count: int) -> dict[str, Any]:
    """`count` flat lines of 1.00 each (line i: quantity 1, 1.00): totals `count`.00."""
    invoice = realistic_invoice()
    invoice["lines"] = [
        line(
            f"01JLINE{i:019d}",
            f"Seat {i:03d}",
            type_="flat_fee",
            per_unit_amount="1.00",
            details=[detailed(f"seat-{i}", f"Seat {i:03d}", "1", "1.00", "1.00")],
            line_totals=totals(amount="1.00"),
        )
        for i in range(1, count + 1)
    ]
    invoice["totals"] = totals(amount=f"{count}.00")
    return invoice


def in_currency(invoice: dict[str, Any], currency: str, **invoice_totals: str) -> dict[str, Any]:
    out = copy.deepcopy(invoice)
    out["currency"] = currency
    out["totals"] = totals(**invoice_totals)
    return out
