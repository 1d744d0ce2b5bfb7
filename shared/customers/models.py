"""The customer and the subjects it claims (requests.py parses the contract's bodies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Subject claims are written in the same transaction as the customer (DynamoDB caps a transaction at
# 100 items). The worst update replaces every subject key and renames the customer: 1 customer item
# + up to N+2 claims put (subject keys, key, id) + N claims deleted = 2N+3 items; 40 leaves headroom.
MAX_SUBJECT_KEYS = 40
# Subjects are DynamoDB partition keys (`SUBJECT#<subject>`, 2048 bytes at most); the contract's
# ExternalResourceKey is 1-256 characters, and subject keys get the same bound.
MAX_SUBJECT_KEY_LENGTH = 256


@dataclass
class Customer:
    id: str
    key: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    labels: dict[str, str] | None = None
    subject_keys: list[str] = field(default_factory=list)
    primary_email: str | None = None
    currency: str | None = None
    billing_address: dict[str, str] | None = None
    deleted_at: datetime | None = None
    # Optimistic lock: every write is conditional on the version it read.
    version: int = 1
    test_clock_id: str | None = None  # set at creation, never changed

    @property
    def subjects(self) -> list[str]:
        """Every event subject attributed to this customer: its subject keys, its key and its id."""
        return list(dict.fromkeys([*self.subject_keys, self.key, self.id]))
