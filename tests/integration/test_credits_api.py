"""Prepaid credits over the API and through `CreditService.apply` (product.md §13), on moto.

Numbers are worked by hand beside each assertion. Grants are dated in the past (T0 = 2026-01-01) so
the real clock of the API sees them as active; `apply` runs at explicit instants.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared import bootstrap
from shared.core.errors import Conflict
from shared.core.timeutil import parse_rfc3339
from tests.support.harness import VIEWER, Stack

D = Decimal


def customer(stack: Stack, key: str = "acme") -> str:
    resp = stack.request("POST", "/customers", {"key": key, "name": key.title()})
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def grant(stack: Stack, cid: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Promo", "funding_method": "none", "currency": "USD", "amount": "100", **fields}
    resp = stack.request("POST", f"/customers/{cid}/credits/grants", body)
    assert resp.status == 201, resp
    return dict(resp.json())


def balance(stack: Stack, cid: str, query: str = "") -> dict[str, dict[str, str]]:
    resp = stack.request("GET", f"/customers/{cid}/credits/balance{query}")
    assert resp.status == 200, resp
    return {b["currency"]: {k: v for k, v in b.items() if k != "currency"} for b in resp.json()["balances"]}


def test_burn_down_order_over_the_api_and_apply(stack: Stack) -> None:
    cid = customer(stack)
    # Example B: A(p1, exp T10, 50), B(p1, T20, 80), C(p2, never, 100), all effective 2026-01-01.
    a = grant(
        stack,
        cid,
        name="A",
        amount="50",
        priority=1,
        effective_at="2026-01-01T00:00:00Z",
        expires_after="P10D",
    )
    b = grant(
        stack,
        cid,
        name="B",
        amount="80",
        priority=1,
        effective_at="2026-01-01T00:00:00Z",
        expires_after="P20D",
    )
    grant(stack, cid, name="C", amount="100", priority=2, effective_at="2026-01-01T00:00:00Z")
    assert a["status"] == "expired" and a["expires_at"] == "2026-01-11T00:00:00Z"
    credits = bootstrap.credits()
    applied = credits.apply(cid, "USD", D("90"), parse_rfc3339("2026-01-02T00:00:00Z"), "inv-1/line-1")
    assert applied == D(90)  # A 50 + B 40
    # Settled now (long after T20): A expired 50-50 = 0, B expired 80-40 = 40, C 100 -> 100.
    assert balance(stack, cid) == {"USD": {"live": "100", "settled": "100", "pending": "0"}}
    # At T5: 230 granted - 90 consumed = 140.
    assert balance(stack, cid, "?timestamp=2026-01-06T00:00:00Z")["USD"]["settled"] == "140"
    txs = stack.request("GET", f"/customers/{cid}/credits/transactions").json()["data"]
    # Newest first: B expired -40 (T20), then consumed A -50 and B -40 (T1), funded C, B, A.
    assert [(t["type"], t["amount"], t["available_balance"]["after"]) for t in txs] == [
        ("expired", "-40", "100"),
        ("consumed", "-40", "140"),
        ("consumed", "-50", "180"),
        ("funded", "100", "230"),
        ("funded", "80", "130"),
        ("funded", "50", "50"),
    ]
    assert txs[1]["name"] == "Invoice" and b["id"]


def test_apply_is_exactly_once_per_key_and_credit_then_invoice_remainder(stack: Stack) -> None:
    cid = customer(stack)
    grant(stack, cid, amount="40", effective_at="2026-01-01T00:00:00Z")
    credits = bootstrap.credits()
    at = parse_rfc3339("2026-02-01T00:00:00Z")
    # Charge 100, balance 40 -> 40 applied, the invoice bills 60.
    assert credits.apply(cid, "USD", D(100), at, "inv-7") == D(40)
    assert credits.apply(cid, "USD", D(100), at, "inv-7") == D(40)  # a retried run: same answer
    assert balance(stack, cid)["USD"]["settled"] == "0"
    with pytest.raises(Conflict):
        credits.apply(cid, "USD", D(99), at, "inv-7")  # the key is this charge's, not another's
    assert credits.apply(cid, "USD", D(10), at, "inv-8") == D(0)  # nothing left
    assert credits.apply(cid, "EUR", D(10), at, "inv-9") == D(0)  # USD credits never pay EUR


def test_feature_restricted_grants_and_balance_filter(stack: Stack) -> None:
    cid = customer(stack)
    t0 = {"effective_at": "2026-01-01T00:00:00Z"}
    grant(stack, cid, amount="1", **t0)
    grant(stack, cid, amount="2", filters={"features": ["input_tokens"]}, **t0)
    grant(stack, cid, amount="4", filters={"features": ["input_tokens", "output_tokens"]}, **t0)
    grant(stack, cid, amount="8", filters={"features": ["storage"]}, **t0)
    # eq input_tokens: 1 + 2 + 4 = 7 (unrestricted and both sets containing it; not storage).
    assert balance(stack, cid, "?filter%5Bfeature_key%5D%5Beq%5D=input_tokens")["USD"]["settled"] == "7"
    assert balance(stack, cid)["USD"]["settled"] == "15"
    at = parse_rfc3339("2026-01-02T00:00:00Z")
    # A flat fee (no feature) draws unrestricted credits only: 1 of 5.
    assert bootstrap.credits().apply(cid, "USD", D(5), at, "flat") == D(1)


def test_grant_key_is_idempotency_and_reuse_is_409(stack: Stack) -> None:
    cid = customer(stack)
    first = grant(stack, cid, key="order-1")
    resp = stack.request(
        "POST",
        f"/customers/{cid}/credits/grants",
        {"name": "Again", "funding_method": "none", "currency": "USD", "amount": "5", "key": "order-1"},
    )
    assert resp.status == 409 and resp.json()["conflicting_entity_id"] == first["id"]
    listed = stack.request("GET", f"/customers/{cid}/credits/grants?filter[key][eq]=order-1").json()
    assert [g["id"] for g in listed["data"]] == [first["id"]] and listed["meta"]["page"]["total"] == 1


def test_purchase_and_external_settlement(stack: Stack) -> None:
    cid = customer(stack)
    # 100 credits x 0.50 = 50.00 USD.
    g = grant(
        stack, cid, funding_method="external", purchase={"currency": "USD", "per_unit_cost_basis": "0.50"}
    )
    assert g["purchase"] == {
        "currency": "USD",
        "per_unit_cost_basis": "0.5",
        "amount": "50",
        "availability_policy": "on_creation",
        "settlement_status": "pending",
    }
    url = f"/customers/{cid}/credits/grants/{g['id']}/settlement/external"
    assert (
        stack.request("POST", url, {"status": "authorized"}).json()["purchase"]["settlement_status"]
        == "authorized"
    )
    settled = stack.request("POST", url, {"status": "settled"})
    assert settled.status == 200 and settled.json()["purchase"]["settlement_status"] == "settled"
    back = stack.request("POST", url, {"status": "pending"})
    assert back.status == 400 and back.json()["invalid_parameters"][0]["field"] == "status"
    promo = grant(stack, cid)
    resp = stack.request(
        "POST", f"/customers/{cid}/credits/grants/{promo['id']}/settlement/external", {"status": "settled"}
    )
    assert resp.status == 400 and resp.json()["invalid_parameters"][0]["field"] == "creditGrantId"
    assert (
        stack.request("GET", f"/customers/{cid}/credits/grants/{g['id']}").json()["purchase"][
            "settlement_status"
        ]
        == "settled"
    )


def test_adjustments_correct_the_balance(stack: Stack) -> None:
    cid = customer(stack)
    grant(stack, cid, amount="100", effective_at="2026-01-01T00:00:00Z")
    url = f"/customers/{cid}/credits/adjustments"
    resp = stack.request("POST", url, {"name": "Over-billed usage", "currency": "USD", "amount": "10"})
    assert resp.status == 201 and resp.json() == {"name": "Over-billed usage"}
    assert stack.request("POST", url, {"name": "Fix", "currency": "USD", "amount": "-40"}).status == 201
    assert balance(stack, cid)["USD"]["settled"] == "70"  # 100 + 10 - 40
    too_much = stack.request("POST", url, {"name": "Fix", "currency": "USD", "amount": "-70.01"})
    assert too_much.status == 400 and too_much.json()["invalid_parameters"][0]["field"] == "amount"
    assert balance(stack, cid)["USD"]["settled"] == "70"  # nothing written


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "1.001"}, "amount"),  # USD has 2 decimals
        ({"currency": "ZZZ"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"priority": 0}, "priority"),
        ({"priority": 1001}, "priority"),
        ({"expires_after": "P0D"}, "expires_after"),
        ({"expires_after": "P1.5D"}, "expires_after"),
        ({"effective_at": "yesterday"}, "effective_at"),
        ({"funding_method": "invoice"}, "purchase"),
        ({"purchase": {"currency": "USD"}}, "purchase"),
        (
            {"funding_method": "external", "purchase": {"currency": "USD", "per_unit_cost_basis": "0"}},
            "purchase",
        ),
        ({"filters": {"features": ["Not A Key"]}}, "filters.features[0]"),
        ({"tax_config": {"tax_code": {"id": "01G65Z755AFWAKHE12NY0CQ9FH"}}}, "tax_config.tax_code.id"),
        ({"surprise": 1}, "surprise"),
        ({"name": None}, "name"),
    ],
)
def test_bad_grants_name_the_field_and_write_nothing(stack: Stack, body: dict[str, Any], field: str) -> None:
    cid = customer(stack)
    full = {"name": "Promo", "funding_method": "none", "currency": "USD", "amount": "100", **body}
    resp = stack.request("POST", f"/customers/{cid}/credits/grants", full)
    assert resp.status == 400, resp
    assert resp.headers["content-type"] == "application/problem+json"
    assert field in [p["field"] for p in resp.json()["invalid_parameters"]]
    assert stack.request("GET", f"/customers/{cid}/credits/grants").json()["meta"]["page"]["total"] == 0


def test_unknown_customer_and_grant_are_404_and_keys_are_400(stack: Stack) -> None:
    cid = customer(stack)
    ghost = "01G65Z755AFWAKHE12NY0CQ9FH"
    assert stack.request("GET", f"/customers/{ghost}/credits/balance").status == 404
    assert stack.request("GET", f"/customers/{cid}/credits/grants/{ghost}").status == 404
    resp = stack.request("GET", "/customers/acme/credits/balance")
    assert resp.status == 400 and resp.json()["invalid_parameters"][0]["field"] == "customerId"
    bad = stack.request("GET", f"/customers/{cid}/credits/transactions?page[after]=nope")
    assert bad.status == 400 and bad.json()["invalid_parameters"][0]["field"] == "page[after]"


@pytest.mark.parametrize("path", ["transactions", "grants"])
@pytest.mark.parametrize("currency", ["", "usd", "EURO"])
def test_a_currency_filter_that_is_no_currency_code_is_400(stack: Stack, path: str, currency: str) -> None:
    """Found by the contract fuzz: `filter[currency]=` was answered 200 with an empty page."""
    cid = customer(stack)
    resp = stack.request("GET", f"/customers/{cid}/credits/{path}?filter[currency]={currency}")
    assert resp.status == 400, resp
    assert resp.json()["invalid_parameters"][0]["field"] == "filter[currency]"


def test_viewer_reads_but_cannot_grant(stack: Stack) -> None:
    cid = customer(stack)
    assert stack.request("GET", f"/customers/{cid}/credits/balance", token=VIEWER).status == 200
    body = {"name": "P", "funding_method": "none", "currency": "USD", "amount": "1"}
    assert stack.request("POST", f"/customers/{cid}/credits/grants", body, token=VIEWER).status == 403


def test_transactions_cursor_pagination(stack: Stack) -> None:
    cid = customer(stack)
    for day in range(1, 6):
        grant(stack, cid, amount=str(day), effective_at=f"2026-01-0{day}T00:00:00Z")
    first = stack.request("GET", f"/customers/{cid}/credits/transactions?page[size]=2").json()
    assert [t["amount"] for t in first["data"]] == ["5", "4"]
    assert first["meta"]["page"]["previous"] is None
    second = stack.request("GET", first["meta"]["page"]["next"].removeprefix("/v3/openmeter")).json()
    assert [t["amount"] for t in second["data"]] == ["3", "2"]
    third = stack.request("GET", second["meta"]["page"]["next"].removeprefix("/v3/openmeter")).json()
    assert [t["amount"] for t in third["data"]] == ["1"] and third["meta"]["page"]["next"] is None
    back = stack.request("GET", third["meta"]["page"]["previous"].removeprefix("/v3/openmeter")).json()
    assert [t["amount"] for t in back["data"]] == ["3", "2"]
    funded = stack.request("GET", f"/customers/{cid}/credits/transactions?filter[type]=consumed").json()
    assert funded["data"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "0.001"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"currency": "XAU"}, "currency"),  # no minor unit: not money
        ({"name": ""}, "name"),
        ({"labels": {"kong-x": "1", "_bad": "1"}}, "labels"),
    ],
)
def test_bad_adjustments_name_the_field_and_write_nothing(
    stack: Stack, body: dict[str, Any], field: str
) -> None:
    cid = customer(stack)
    grant(stack, cid, amount="5", effective_at="2026-01-01T00:00:00Z")
    full = {"name": "Fix", "currency": "USD", "amount": "1", **body}
    resp = stack.request("POST", f"/customers/{cid}/credits/adjustments", full)
    assert resp.status == 400, resp
    assert field in [p["field"] for p in resp.json()["invalid_parameters"]]
    assert balance(stack, cid)["USD"]["settled"] == "5"
    txs = stack.request("GET", f"/customers/{cid}/credits/transactions").json()["data"]
    assert [t["type"] for t in txs] == ["funded"]


def test_apply_refuses_what_the_invoice_must_never_send(stack: Stack) -> None:
    cid = customer(stack)
    credits = bootstrap.credits()
    at = parse_rfc3339("2026-02-01T00:00:00Z")
    with pytest.raises(ValueError, match="negative"):
        credits.apply(cid, "USD", D(-1), at, "k")
    with pytest.raises(ValueError, match="decimals"):
        credits.apply(cid, "USD", D("0.001"), at, "k")
    with pytest.raises(ValueError, match="timezone"):
        credits.apply(cid, "USD", D(1), at.replace(tzinfo=None), "k")
    with pytest.raises(ValueError, match="idempotency_key"):
        credits.apply(cid, "USD", D(1), at, "")
