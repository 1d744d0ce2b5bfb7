"""Request bodies for the billing profile tests."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Stack


def app_ids(stack: Stack) -> dict[str, str]:
    """Installed app ids by type."""
    return {a["type"]: a["id"] for a in stack.request("GET", "/apps").json()["data"]}


def profile_body(stack: Stack, name: str = "Main", default: bool = False, **overrides: Any) -> dict[str, Any]:
    sandbox = app_ids(stack)["sandbox"]
    body: dict[str, Any] = {
        "name": name,
        "supplier": {
            "name": "Meterline Ltd",
            "tax_id": {"code": "GB123456789"},
            "addresses": {"billing_address": {"country": "GB", "city": "London", "line1": "1 King St"}},
        },
        "workflow": {},
        "apps": {"tax": {"id": sandbox}, "invoicing": {"id": sandbox}, "payment": {"id": sandbox}},
        "default": default,
    }
    body.update(overrides)
    return body


def upsert_body(created: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A PUT body from a profile as returned (apps are fixed at creation, so not sent)."""
    body = {k: created[k] for k in ("name", "supplier", "workflow", "default")}
    body.update(overrides)
    return body
