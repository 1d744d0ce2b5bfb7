"""Customers -> the contract's JSON (`Customer`, and a page of them)."""

from __future__ import annotations

from typing import Any

from shared.api.params import Page
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.customers.models import Customer


def customer(c: Customer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": c.id,
        "key": c.key,
        "name": c.name,
        "usage_attribution": {"subject_keys": list(c.subject_keys)},
        "created_at": format_rfc3339(c.created_at),
        "updated_at": format_rfc3339(c.updated_at),
    }
    if c.description is not None:
        body["description"] = c.description
    if c.labels is not None:
        body["labels"] = c.labels
    if c.primary_email is not None:
        body["primary_email"] = c.primary_email
    if c.currency is not None:
        body["currency"] = c.currency
    if c.billing_address is not None:
        body["billing_address"] = dict(c.billing_address)
    if c.deleted_at is not None:
        body["deleted_at"] = format_rfc3339(c.deleted_at)
    if c.test_clock_id is not None:
        body["test_clock_id"] = c.test_clock_id
    return body


def page(p: Page, listed: Listed[Customer]) -> dict[str, Any]:
    return p.response([customer(c) for c in listed.items], listed.total)
