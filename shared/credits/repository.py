"""Credits in the config table (docs/architecture.md "Credits").

- `CREDITS#<customer>` / `HEAD`: `seq`, the ledger's version. Every write that changes balances (a
  grant, a consumption, an adjustment) moves it from the `seq` it read, in the same transaction, so
  two concurrent consumptions can't both spend the same credits: the loser retries on fresh state.
- `CREDITS#<customer>` / `GRANT#<grant id>`: a grant (ULIDs sort by creation); `seq` its ledger order.
- `CREDITS#<customer>` / `MOVE#<seq, 12 digits>`: a consumption or an adjustment, append-only.
- `CREDITKEY#<customer>#<key>` / `CREDITKEY`: a grant's `key` claim (a reused key is a conflict).
- `CREDITAPPLY#<customer>#<idempotency key>` / `CREDITAPPLY`: what an `apply` did (currency, amount
  asked, amount applied, movement id); written with the movement, so a retried invoice run finds it.

One consistent Query reads a customer's whole ledger (head, grants, movements).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from shared.aws.dynamo import from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_optional, format_rfc3339, parse_optional, parse_rfc3339
from shared.credits.models import (
    CreditGrant,
    FundingMethod,
    Movement,
    Purchase,
    SettlementStatus,
    TaxConfig,
)


class LedgerConflict(Exception):
    """A conditional write lost: the ledger moved, a key is claimed, or the apply key is taken."""


@dataclass(frozen=True)
class LedgerState:
    seq: int
    grants: list[CreditGrant]  # in ledger order
    movements: list[Movement]
    orders: dict[str, int]  # grant id -> its ledger position (shared with movements' `seq`)


@dataclass(frozen=True)
class AppliedClaim:
    currency: str
    requested: Decimal
    applied: Decimal
    movement_id: str | None
    feature_key: str | None


def _pk(customer_id: str) -> str:
    return f"CREDITS#{customer_id}"


def _grant_record(g: CreditGrant, seq: int) -> dict[str, Any]:
    return {
        "pk": _pk(g.customer_id),
        "sk": f"GRANT#{g.id}",
        "id": g.id,
        "seq": seq,
        "customer_id": g.customer_id,
        "name": g.name,
        "description": g.description,
        "labels": g.labels,
        "funding_method": g.funding_method.value,
        "currency": g.currency,
        "amount": str(g.amount),
        "priority": g.priority,
        "effective_at": format_rfc3339(g.effective_at),
        "expires_at": format_optional(g.expires_at),
        "created_at": format_rfc3339(g.created_at),
        "updated_at": format_rfc3339(g.updated_at),
        "voided_at": format_optional(g.voided_at),
        "key": g.key,
        "features": list(g.features) or None,
        "purchase": orjson.dumps(
            {
                "currency": g.purchase.currency,
                "per_unit_cost_basis": str(g.purchase.per_unit_cost_basis),
                "amount": str(g.purchase.amount),
                "settlement_status": g.purchase.settlement_status.value,
                "availability_policy": g.purchase.availability_policy,
            }
        ).decode()
        if g.purchase
        else None,
        "tax_config": orjson.dumps(
            {"behavior": g.tax_config.behavior, "tax_code_id": g.tax_config.tax_code_id}
        ).decode()
        if g.tax_config
        else None,
        "rev": g.rev,
    }


def _grant(rec: dict[str, Any]) -> tuple[CreditGrant, int]:
    purchase = orjson.loads(rec["purchase"]) if rec.get("purchase") else None
    tax = orjson.loads(rec["tax_config"]) if rec.get("tax_config") else None
    grant = CreditGrant(
        id=rec["id"],
        customer_id=rec["customer_id"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        funding_method=FundingMethod(rec["funding_method"]),
        currency=rec["currency"],
        amount=Decimal(rec["amount"]),
        priority=int(rec["priority"]),
        effective_at=parse_rfc3339(rec["effective_at"]),
        expires_at=parse_optional(rec.get("expires_at")),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        voided_at=parse_optional(rec.get("voided_at")),
        key=rec.get("key"),
        features=tuple(rec.get("features") or ()),
        purchase=Purchase(
            currency=purchase["currency"],
            per_unit_cost_basis=Decimal(purchase["per_unit_cost_basis"]),
            amount=Decimal(purchase["amount"]),
            settlement_status=SettlementStatus(purchase["settlement_status"]),
            availability_policy=purchase["availability_policy"],
        )
        if purchase
        else None,
        tax_config=TaxConfig(tax["behavior"], tax["tax_code_id"]) if tax else None,
        rev=int(rec.get("rev", 0)),
    )
    return grant, int(rec["seq"])


def _movement_record(customer_id: str, m: Movement) -> dict[str, Any]:
    return {
        "pk": _pk(customer_id),
        "sk": f"MOVE#{m.seq:012d}",
        "id": m.id,
        "seq": m.seq,
        "currency": m.currency,
        "name": m.name,
        "description": m.description,
        "labels": m.labels,
        "booked_at": format_rfc3339(m.booked_at),
        "created_at": format_rfc3339(m.created_at),
        "amount": str(m.amount),
        "parts": orjson.dumps([[i, b, str(a)] for i, b, a in m.parts]).decode(),
    }


def _movement(rec: dict[str, Any]) -> Movement:
    return Movement(
        id=rec["id"],
        seq=int(rec["seq"]),
        currency=rec["currency"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        booked_at=parse_rfc3339(rec["booked_at"]),
        created_at=parse_rfc3339(rec["created_at"]),
        amount=Decimal(rec["amount"]),
        parts=tuple((i, b, Decimal(a)) for i, b, a in orjson.loads(rec["parts"])),
    )


class CreditRepository(TableRepository):
    # -- reads -------------------------------------------------------------------------------------
    def ledger(self, customer_id: str) -> LedgerState:
        seq = 0
        grants: list[tuple[int, CreditGrant]] = []
        movements: list[Movement] = []
        for item in query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _pk(customer_id)}},
            ConsistentRead=True,
        ):
            rec = from_item(item)
            sk = rec["sk"]
            if sk == "HEAD":
                seq = int(rec["seq"])
            elif sk.startswith("GRANT#"):
                grant, order = _grant(rec)
                grants.append((order, grant))
            elif sk.startswith("MOVE#"):
                movements.append(_movement(rec))
        grants.sort(key=lambda x: x[0])
        return LedgerState(seq, [g for _, g in grants], movements, {g.id: o for o, g in grants})

    def get_grant(self, customer_id: str, grant_id: str) -> tuple[CreditGrant, int] | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": _pk(customer_id)}, "sk": {"S": f"GRANT#{grant_id}"}},
            ConsistentRead=True,
        ).get("Item")
        return _grant(from_item(item)) if item else None

    def applied(self, customer_id: str, idempotency_key: str) -> AppliedClaim | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": _apply_pk(customer_id, idempotency_key)}, "sk": {"S": "CREDITAPPLY"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        rec = from_item(item)
        return AppliedClaim(
            rec["currency"],
            Decimal(rec["requested"]),
            Decimal(rec["applied"]),
            rec.get("movement_id"),
            rec.get("feature_key"),
        )

    # -- writes ------------------------------------------------------------------------------------
    def _head(self, customer_id: str, seq: int, new_seq: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": _pk(customer_id)}, "sk": {"S": "HEAD"}},
                "UpdateExpression": "SET seq = :new",
                "ConditionExpression": "attribute_not_exists(seq) OR seq = :old",
                "ExpressionAttributeValues": {":new": {"N": str(new_seq)}, ":old": {"N": str(seq)}},
            }
        }

    def _put_new(self, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def add_grant(self, grant: CreditGrant, seq: int) -> None:
        """The grant at ledger position seq + 1, with its key claim: one transaction."""
        items = [self._head(grant.customer_id, seq, seq + 1), self._put_new(_grant_record(grant, seq + 1))]
        if grant.key is not None:
            claim = {
                "pk": f"CREDITKEY#{grant.customer_id}#{grant.key}",
                "sk": "CREDITKEY",
                "grant_id": grant.id,
            }
            items.append(self._put_new(claim))
        self._transact(items, LedgerConflict)

    def key_owner(self, customer_id: str, key: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"CREDITKEY#{customer_id}#{key}"}, "sk": {"S": "CREDITKEY"}},
            ConsistentRead=True,
        ).get("Item")
        return str(item["grant_id"]["S"]) if item else None

    def add_movement(
        self,
        customer_id: str,
        movement: Movement,
        seq: int,
        claim: tuple[str, AppliedClaim] | None = None,
    ) -> None:
        """A movement at ledger position `movement.seq` (= seq + 1) and, for an `apply`, its claim."""
        items = [
            self._head(customer_id, seq, movement.seq),
            self._put_new(_movement_record(customer_id, movement)),
        ]
        if claim is not None:
            items.append(self._claim(customer_id, *claim))
        self._transact(items, LedgerConflict)

    def record_claim_only(self, customer_id: str, key: str, claim: AppliedClaim) -> None:
        """An `apply` that drew nothing still records its answer (so a retry answers the same)."""
        self._transact([self._claim(customer_id, key, claim)], LedgerConflict)

    def _claim(self, customer_id: str, key: str, claim: AppliedClaim) -> dict[str, Any]:
        return self._put_new(
            {
                "pk": _apply_pk(customer_id, key),
                "sk": "CREDITAPPLY",
                "currency": claim.currency,
                "requested": str(claim.requested),
                "applied": str(claim.applied),
                "movement_id": claim.movement_id,
                "feature_key": claim.feature_key,
            }
        )

    def update_grant(self, grant: CreditGrant, seq: int) -> None:
        """Replace a grant's fields (never its amounts) unless it changed since read (`rev` moved on)."""
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_grant_record(grant, seq)),
                        "ConditionExpression": "rev = :rev",
                        "ExpressionAttributeValues": {":rev": {"N": str(grant.rev - 1)}},
                    }
                }
            ],
            LedgerConflict,
        )


def _apply_pk(customer_id: str, key: str) -> str:
    return f"CREDITAPPLY#{customer_id}#{key}"
