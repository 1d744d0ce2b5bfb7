"""Customers and their subject claims in the config table.

Keys:
- `pk=CUSTOMER#<id>, sk=CUSTOMER` holds the customer (live or soft-deleted);
  `gsi1pk=CUSTOMER, gsi1sk=<created_at>#<id>` lists them.
- `pk=SUBJECT#<subject>, sk=SUBJECT` is the claim of one event subject by one live customer, carrying
  `customer_id`, `customer_key` and `customer_name` so attribution is a single key read. A live customer
  claims each of its subject keys, its key and its id. Claims enforce every uniqueness rule at once: a
  key taken by another live customer, a subject attributed to another customer, and a customer key
  colliding with another customer's subject key (or id) all hit an existing claim. Looking a customer up
  by key reads the claim of that key and checks `customer_key == key`.

The customer and all its claim changes are written in one TransactWriteItems (at most
2 * MAX_SUBJECT_KEYS + 3 items); the customer item carries a `version` every write is conditional on,
so concurrent writers can never leave a claim behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.aws.dynamo import batch_get, from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.customers.models import MAX_SUBJECT_KEY_LENGTH, Customer

CLAIM_SK = "SUBJECT"
CUSTOMER_SK = "CUSTOMER"
# A claim may be (re)written or released only while it is free or already ours.
_FREE_OR_OURS = "attribute_not_exists(pk) OR customer_id = :cid"


class TransactionConflict(Exception):
    """A condition failed: a claim is taken, or the customer changed since it was read."""


@dataclass(frozen=True)
class Claim:
    subject: str
    customer_id: str
    customer_key: str | None
    customer_name: str


def claim_key(subject: str) -> dict[str, Any]:
    return to_item({"pk": f"SUBJECT#{subject}", "sk": CLAIM_SK})


def customer_item_key(customer_id: str) -> dict[str, Any]:
    return to_item({"pk": f"CUSTOMER#{customer_id}", "sk": CUSTOMER_SK})


def claimable(subject: Any) -> bool:
    """Only these subjects can have a claim (longer ones would also be invalid DynamoDB keys)."""
    return isinstance(subject, str) and 0 < len(subject) <= MAX_SUBJECT_KEY_LENGTH


def claim_from_record(rec: dict[str, Any]) -> Claim:
    return Claim(
        subject=rec["subject"],
        customer_id=rec["customer_id"],
        customer_key=rec.get("customer_key"),
        customer_name=rec.get("customer_name") or "",
    )


def _claim_record(subject: str, customer: Customer) -> dict[str, Any]:
    return {
        "pk": f"SUBJECT#{subject}",
        "sk": CLAIM_SK,
        "subject": subject,
        "customer_id": customer.id,
        "customer_key": customer.key,
        "customer_name": customer.name,
    }


def _to_record(customer: Customer) -> dict[str, Any]:
    return {
        "pk": f"CUSTOMER#{customer.id}",
        "sk": CUSTOMER_SK,
        "gsi1pk": "CUSTOMER",
        "gsi1sk": f"{format_rfc3339(customer.created_at)}#{customer.id}",
        "id": customer.id,
        "key": customer.key,
        "name": customer.name,
        "description": customer.description,
        "labels": customer.labels,
        "subject_keys": list(customer.subject_keys),
        "primary_email": customer.primary_email,
        "currency": customer.currency,
        "billing_address": customer.billing_address,
        "created_at": format_rfc3339(customer.created_at),
        "updated_at": format_rfc3339(customer.updated_at),
        "deleted_at": format_rfc3339(customer.deleted_at) if customer.deleted_at else None,
        "version": customer.version,
        "test_clock_id": customer.test_clock_id,
    }


def customer_from_record(rec: dict[str, Any]) -> Customer:
    def dt(name: str) -> datetime | None:
        return parse_rfc3339(rec[name]) if rec.get(name) else None

    return Customer(
        id=rec["id"],
        key=rec["key"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        subject_keys=list(rec.get("subject_keys") or []),
        primary_email=rec.get("primary_email"),
        currency=rec.get("currency"),
        billing_address=dict(rec["billing_address"]) if rec.get("billing_address") else None,
        created_at=parse_rfc3339(rec["created_at"]),  # always written
        updated_at=parse_rfc3339(rec["updated_at"]),
        deleted_at=dt("deleted_at"),
        version=int(rec.get("version") or 1),
        test_clock_id=rec.get("test_clock_id"),
    )


class CustomerRepository(TableRepository):
    # -- writes ----------------------------------------------------------------------------------
    def _put_claim(self, subject: str, customer: Customer) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(_claim_record(subject, customer)),
                "ConditionExpression": _FREE_OR_OURS,
                "ExpressionAttributeValues": {":cid": to_value(customer.id)},
            }
        }

    def _release_claim(self, subject: str, customer: Customer) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": claim_key(subject),
                "ConditionExpression": _FREE_OR_OURS,
                "ExpressionAttributeValues": {":cid": to_value(customer.id)},
            }
        }

    def _put_customer(self, customer: Customer, expected_version: int | None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(_to_record(customer))}
        if expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v AND attribute_not_exists(deleted_at)"
            put["ExpressionAttributeValues"] = {":v": to_value(expected_version)}
        return {"Put": put}

    def create(self, customer: Customer, extra: list[dict[str, Any]] | None = None) -> None:
        """The customer and a claim for each of its subjects, atomically (with `extra` items: its
        test clock binding)."""
        self._transact(
            [self._put_customer(customer, None)]
            + [self._put_claim(s, customer) for s in customer.subjects]
            + (extra or []),
            TransactionConflict,
        )

    def update(self, old: Customer, new: Customer) -> None:
        """Replace the customer; claim added subjects, release removed ones, refresh kept ones on rename."""
        old_subjects = set(old.subjects)
        new_subjects = new.subjects
        refresh = old.name != new.name or old.key != new.key
        items = [self._put_customer(new, old.version)]
        items += [self._put_claim(s, new) for s in new_subjects if refresh or s not in old_subjects]
        items += [self._release_claim(s, new) for s in old.subjects if s not in set(new_subjects)]
        self._transact(items, TransactionConflict)

    def soft_delete(
        self, old: Customer, deleted: Customer, extra: list[dict[str, Any]] | None = None
    ) -> None:
        """Mark deleted and release the key and every subject, atomically (with `extra` items:
        releasing its test clock)."""
        self._transact(
            [self._put_customer(deleted, old.version)]
            + [self._release_claim(s, old) for s in old.subjects]
            + (extra or []),
            TransactionConflict,
        )

    # -- reads -----------------------------------------------------------------------------------
    def get(self, customer_id: str) -> Customer | None:
        resp = self.client.get_item(
            TableName=self.table, Key=customer_item_key(customer_id), ConsistentRead=True
        )
        return customer_from_record(from_item(resp["Item"])) if "Item" in resp else None

    def claims(self, subjects: Iterable[str]) -> dict[str, Claim]:
        """The live claims on `subjects` (consistent reads, 100 keys per BatchGetItem)."""
        wanted = [s for s in dict.fromkeys(subjects) if claimable(s)]
        items = batch_get(self.client, self.table, [claim_key(s) for s in wanted])
        found = (claim_from_record(from_item(i)) for i in items)
        return {c.subject: c for c in found}

    def id_for_key(self, key: str) -> str | None:
        claim = self.claims([key]).get(key)
        return claim.customer_id if claim is not None and claim.customer_key == key else None

    def list_live(self) -> list[Customer]:
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            FilterExpression="attribute_not_exists(deleted_at)",
            ExpressionAttributeValues={":p": {"S": "CUSTOMER"}},
        )
        return [customer_from_record(from_item(i)) for i in items]
