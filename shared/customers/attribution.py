"""Usage attribution: which live customer an event subject belongs to, and back.

A subject belongs to a customer when it is one of the customer's `usage_attribution.subject_keys`, or
equals the customer's key or id. Each such subject has a claim item (`pk=SUBJECT#<subject>, sk=SUBJECT`,
see `shared.customers.repository`) carrying the customer's id, key and name, kept in step with the
customer in the same transaction; so resolving subjects is one BatchGetItem per 100 subjects and
nothing else. Claims exist for live customers only (soft delete releases them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.aws.dynamo import batch_get, from_item
from shared.customers.repository import (
    claim_from_record,
    claim_key,
    claimable,
    customer_from_record,
    customer_item_key,
)


@dataclass(frozen=True)
class CustomerRef:
    id: str
    key: str | None
    name: str


class Attribution:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def resolve_subjects(self, subjects: Iterable[str]) -> dict[str, CustomerRef]:
        """subject -> its live customer; subjects attributed to no customer are absent."""
        wanted = [s for s in dict.fromkeys(subjects) if claimable(s)]
        if not wanted:
            return {}
        items = batch_get(self.client, self.table, [claim_key(s) for s in wanted])
        out: dict[str, CustomerRef] = {}
        for item in items:
            claim = claim_from_record(from_item(item))
            out[claim.subject] = CustomerRef(claim.customer_id, claim.customer_key, claim.customer_name)
        return out

    def subjects_of(self, customer_ids: Iterable[str]) -> dict[str, list[str]]:
        """live customer id -> every subject attributed to it (subject keys, then key, then id).

        Ids only (not keys); unknown and deleted customers are absent.
        """
        wanted = [i for i in dict.fromkeys(customer_ids) if claimable(i)]
        if not wanted:
            return {}
        items = batch_get(self.client, self.table, [customer_item_key(i) for i in wanted])
        customers = (customer_from_record(from_item(i)) for i in items)
        return {c.id: c.subjects for c in customers if c.deleted_at is None}

    def get_ref(self, customer_id: str, include_deleted: bool = False) -> CustomerRef | None:
        """The customer with this id (not key); None when unknown or deleted (unless include_deleted)."""
        if not claimable(customer_id):
            return None
        resp = self.client.get_item(
            TableName=self.table, Key=customer_item_key(customer_id), ConsistentRead=True
        )
        if "Item" not in resp:
            return None
        customer = customer_from_record(from_item(resp["Item"]))
        if customer.deleted_at is not None and not include_deleted:
            return None
        return CustomerRef(customer.id, customer.key, customer.name)
