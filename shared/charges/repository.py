"""Charges in the config table (docs/architecture.md "DynamoDB key design").

- `CHARGES#<customer>` / `CHARGE#<id>`: a charge (ULIDs sort by creation; one Query lists a
  customer's). While it waits for an invoice (its closing line not issued, not deleted, and not
  `credit_only`, which never makes an invoice line) it carries `gsi1pk = CHARGEDUE`,
  `gsi1sk = <invoice_at>#<customer>#<id>`: a sparse index, so "which customers have charges to
  invoice by now" is one Query of what is due, never a scan; booking its closing line drops the
  attributes and so the index entry. Its invoice lines are kept on it (`bookings`, JSON: one per
  invoiced part of its period, a few hundred bytes each).
- `CHARGEID#<id>` / `CHARGEID`: id -> customer, for `book(charge_id, ...)` (invoicing knows ids only).
- `CHARGEREF#<customer>#<unique_reference_id>` / `CHARGEREF`: the reference's claim (idempotent
  creation); written with the charge in one transaction, so two concurrent creates can't both win.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from shared.aws.dynamo import from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.catalog.models import PaymentTerm, Price, PriceType, TaxBehavior, Tier
from shared.charges.models import (
    Booking,
    BookingState,
    Charge,
    ChargeTaxConfig,
    ChargeTotals,
    ChargeType,
    LifecycleController,
    ProrationMode,
    SettlementMode,
)
from shared.core.timeutil import format_optional, format_rfc3339, parse_optional, parse_rfc3339
from shared.rating.models import Period

DUE_PK = "CHARGEDUE"


class ChargeConflict(Exception):
    """A conditional write lost: the reference is claimed, the id exists, or the charge changed."""


def _pk(customer_id: str) -> str:
    return f"CHARGES#{customer_id}"


def due_key(at: datetime) -> str:
    """Fixed width (microseconds, UTC), so index keys sort as instants do."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _price_json(p: Price) -> str:
    tiers = [{"up_to": _opt(t.up_to), "flat": _opt(t.flat), "unit": _opt(t.unit)} for t in p.tiers]
    return orjson.dumps({"type": p.type.value, "amount": _opt(p.amount), "tiers": tiers}).decode()


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _price(raw: str) -> Price:
    data = orjson.loads(raw)
    tiers = tuple(Tier(_dec(t["up_to"]), _dec(t["flat"]), _dec(t["unit"])) for t in data["tiers"])
    return Price(PriceType(data["type"]), _dec(data["amount"]), tiers)


def _period(data: dict[str, Any], name: str) -> Period:
    return Period(parse_rfc3339(data[f"{name}_from"]), parse_rfc3339(data[f"{name}_to"]))


_TOTALS = tuple(ChargeTotals.__dataclass_fields__)


def _booking_json(b: Booking) -> dict[str, Any]:
    return {
        "line_id": b.line_id,
        "invoice_id": b.invoice_id,
        "totals": {k: str(getattr(b.totals, k)) for k in _TOTALS},
        "closes": b.closes,
        "state": b.state.value,
        "booked_at": format_rfc3339(b.booked_at),
    }


def _booking(data: dict[str, Any]) -> Booking:
    return Booking(
        line_id=data["line_id"],
        invoice_id=data["invoice_id"],
        totals=ChargeTotals(**{k: Decimal(data["totals"][k]) for k in _TOTALS}),
        closes=bool(data["closes"]),
        state=BookingState(data["state"]),
        booked_at=parse_rfc3339(data["booked_at"]),
    )


def _record(c: Charge) -> dict[str, Any]:
    tax = c.tax_config
    rec: dict[str, Any] = {
        "pk": _pk(c.customer_id),
        "sk": f"CHARGE#{c.id}",
        "id": c.id,
        "customer_id": c.customer_id,
        "type": c.type.value,
        "name": c.name,
        "description": c.description,
        "labels": c.labels,
        "currency": c.currency,
        "price": _price_json(c.price),
        "invoice_at": format_rfc3339(c.invoice_at),
        "settlement_mode": c.settlement_mode.value,
        "created_at": format_rfc3339(c.created_at),
        "updated_at": format_rfc3339(c.updated_at),
        "unique_reference_id": c.unique_reference_id,
        "tax_config": orjson.dumps(
            {
                "behavior": tax.behavior.value if tax.behavior else None,
                "tax_code_id": tax.tax_code_id,
                "stripe_code": tax.stripe_code,
                "external_code": tax.external_code,
            }
        ).decode()
        if tax
        else None,
        "payment_term": c.payment_term.value,
        "discount_percentage": _opt(c.discount_percentage),
        "usage_discount": _opt(c.usage_discount),
        "feature_key": c.feature_key,
        "feature_id": c.feature_id,
        "proration_mode": c.proration_mode.value,
        "amount_after_proration": _opt(c.amount_after_proration),
        "lifecycle_controller": c.lifecycle_controller.value,
        "bookings": orjson.dumps([_booking_json(b) for b in c.bookings]).decode(),
        "final_at": format_optional(c.final_at),
        "deleted_at": format_optional(c.deleted_at),
        "request_hash": c.request_hash,
        "rev": c.rev,
    }
    for name in ("service_period", "full_service_period", "billing_period"):
        period: Period = getattr(c, name)
        rec[f"{name}_from"] = format_rfc3339(period.start)
        rec[f"{name}_to"] = format_rfc3339(period.end)
    if c.pending and c.settlement_mode is not SettlementMode.CREDIT_ONLY:
        rec["gsi1pk"] = DUE_PK
        rec["gsi1sk"] = f"{due_key(c.invoice_at)}#{c.customer_id}#{c.id}"
    return rec


def _charge(rec: dict[str, Any]) -> Charge:
    tax = orjson.loads(rec["tax_config"]) if rec.get("tax_config") else None
    return Charge(
        id=rec["id"],
        customer_id=rec["customer_id"],
        type=ChargeType(rec["type"]),
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        currency=rec["currency"],
        price=_price(rec["price"]),
        invoice_at=parse_rfc3339(rec["invoice_at"]),
        service_period=_period(rec, "service_period"),
        full_service_period=_period(rec, "full_service_period"),
        billing_period=_period(rec, "billing_period"),
        settlement_mode=SettlementMode(rec["settlement_mode"]),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        unique_reference_id=rec.get("unique_reference_id"),
        tax_config=ChargeTaxConfig(
            TaxBehavior(tax["behavior"]) if tax["behavior"] else None,
            tax["tax_code_id"],
            tax["stripe_code"],
            tax["external_code"],
        )
        if tax
        else None,
        payment_term=PaymentTerm(rec["payment_term"]),
        discount_percentage=_dec(rec.get("discount_percentage")),
        usage_discount=_dec(rec.get("usage_discount")),
        feature_key=rec.get("feature_key"),
        feature_id=rec.get("feature_id"),
        proration_mode=ProrationMode(rec["proration_mode"]),
        amount_after_proration=_dec(rec.get("amount_after_proration")),
        lifecycle_controller=LifecycleController(rec["lifecycle_controller"]),
        bookings=tuple(_booking(b) for b in orjson.loads(rec.get("bookings") or "[]")),
        final_at=parse_optional(rec.get("final_at")),
        deleted_at=parse_optional(rec.get("deleted_at")),
        request_hash=rec.get("request_hash", ""),
        rev=int(rec["rev"]),
    )


class ChargeRepository(TableRepository):
    def _new(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def create(self, charge: Charge) -> None:
        """The charge, its id pointer and its reference claim, all or nothing."""
        items = [
            self._new(_record(charge)),
            self._new({"pk": f"CHARGEID#{charge.id}", "sk": "CHARGEID", "customer_id": charge.customer_id}),
        ]
        if charge.unique_reference_id is not None:
            items.append(
                self._new(
                    {
                        "pk": _ref_pk(charge.customer_id, charge.unique_reference_id),
                        "sk": "CHARGEREF",
                        "charge_id": charge.id,
                    }
                )
            )
        self._transact(items, ChargeConflict)

    def update(self, charge: Charge) -> None:
        """Replace the charge unless it changed since read (`rev` is the one before `charge.rev`)."""
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_record(charge)),
                        "ConditionExpression": "rev = :rev",
                        "ExpressionAttributeValues": {":rev": {"N": str(charge.rev - 1)}},
                    }
                }
            ],
            ChargeConflict,
        )

    def get(self, customer_id: str, charge_id: str) -> Charge | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": _pk(customer_id)}, "sk": {"S": f"CHARGE#{charge_id}"}},
            ConsistentRead=True,
        ).get("Item")
        return _charge(from_item(item)) if item else None

    def customer_of(self, charge_id: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"CHARGEID#{charge_id}"}, "sk": {"S": "CHARGEID"}},
            ConsistentRead=True,
        ).get("Item")
        return str(item["customer_id"]["S"]) if item else None

    def reference_owner(self, customer_id: str, reference: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": _ref_pk(customer_id, reference)}, "sk": {"S": "CHARGEREF"}},
            ConsistentRead=True,
        ).get("Item")
        return str(item["charge_id"]["S"]) if item else None

    def list_for(self, customer_id: str) -> list[Charge]:
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
            ExpressionAttributeValues={":p": {"S": _pk(customer_id)}, ":c": {"S": "CHARGE#"}},
            ConsistentRead=True,
        )
        return [_charge(from_item(i)) for i in items]

    def due_customers(self, until: datetime) -> Iterator[str]:
        """Customers with a charge to invoice whose `invoice_at` <= until (the sparse due index)."""
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p AND gsi1sk < :u",
            ExpressionAttributeValues={":p": {"S": DUE_PK}, ":u": {"S": due_key(until) + "#~"}},
            ProjectionExpression="customer_id",
        )
        for item in items:
            yield str(item["customer_id"]["S"])


def _ref_pk(customer_id: str, reference: str) -> str:
    return f"CHARGEREF#{customer_id}#{reference}"
