"""Builders for catalog tests: features to reference, and plan / add-on bodies in the contract's shape."""

from __future__ import annotations

import copy
from typing import Any

from tests.support import contract
from tests.support.harness import Response, Stack
from tests.support.problems import problem

UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def features(stack: Stack) -> dict[str, str]:
    """A metered feature `tokens` (meter `tokens`) and a static feature `sso`: key -> id."""
    meter = stack.request(
        "POST",
        "/meters",
        {
            "key": "tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "prompt",
            "value_property": "$.tokens",
        },
    )
    assert meter.status == 201, meter
    out = {}
    for body in (
        {"key": "tokens", "name": "Tokens", "meter": {"id": meter.json()["id"]}},
        {"key": "sso", "name": "SSO"},
    ):
        resp = stack.request("POST", "/features", body)
        assert resp.status == 201, resp
        out[body["key"]] = resp.json()["id"]
    return out


def flat_card(key: str = "platform", **extra: Any) -> dict[str, Any]:
    card = {
        "key": key,
        "name": key.title(),
        "billing_cadence": "P1M",
        "price": {"type": "flat", "amount": "99.00"},
        "payment_term": "in_advance",
    }
    card.update(extra)
    return card


def usage_card(feature_id: str, **extra: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "key": "tokens",
        "name": "Tokens",
        "feature": {"id": feature_id},
        "billing_cadence": "P1M",
        "price": {"type": "unit", "amount": "0.01"},
    }
    card.update(extra)
    return card


def plan_body(key: str = "pro", phases: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": key.title(),
        "currency": "USD",
        "billing_cadence": "P1M",
        "phases": phases
        if phases is not None
        else [{"key": "default", "name": "Default", "rate_cards": [flat_card()]}],
    }
    body.update(extra)
    return body


def full_phases(f: dict[str, str], tax_code_id: str | None = None) -> list[dict[str, Any]]:
    """A trial and a paid phase using every price type, unit config, discounts, commitments, templates."""
    tiers = [
        {
            "up_to_amount": "1000",
            "unit_price": {"type": "unit", "amount": "0.3"},
            "flat_price": {"type": "flat", "amount": "5"},
        },
        {"unit_price": {"type": "unit", "amount": "0.1"}},
    ]
    paid = [
        flat_card(
            tax_config={"behavior": "exclusive", **({"code": {"id": tax_code_id}} if tax_code_id else {})}
        )
        if tax_code_id
        else flat_card(),
        usage_card(
            f["tokens"],
            price={"type": "graduated", "tiers": tiers},
            unit_config={
                "operation": "divide",
                "conversion_factor": "1000",
                "rounding": "ceiling",
                "precision": 0,
                "display_unit": "K tokens",
            },
            discounts={"percentage": 10, "usage": "100"},
            commitments={"minimum_amount": "10", "maximum_amount": "1000"},
            entitlement={"type": "metered", "limit": 1000000, "usage_period": "P1M", "is_soft_limit": False},
        ),
        {
            "key": "sso",
            "name": "SSO",
            "feature": {"id": f["sso"]},
            "billing_cadence": "P1M",
            "price": {"type": "free"},
            "entitlement": {"type": "static", "config": {"saml": True}},
        },
        {"key": "setup", "name": "Setup fee", "price": {"type": "flat", "amount": "250"}},
    ]
    trial = [
        usage_card(f["tokens"], price={"type": "volume", "tiers": copy.deepcopy(tiers)}),
        {
            "key": "sso",
            "name": "SSO",
            "feature": {"id": f["sso"]},
            "billing_cadence": "P1D",
            "price": {"type": "free"},
            "entitlement": {"type": "boolean"},
        },
    ]
    return [
        {"key": "trial", "name": "Trial", "duration": "P14D", "rate_cards": trial},
        {"key": "paid", "name": "Paid", "rate_cards": paid},
    ]


def check(resp: Response, operation_id: str, status: int) -> Any:
    assert resp.status == status, resp
    return contract.validate(resp, operation_id)


def fields(resp: Response) -> list[tuple[str, str | None]]:
    return [(p["field"], p.get("rule")) for p in problem(resp, 400)["invalid_parameters"]]
