"""Customer charges over /v3/openmeter/customers/{id}/charges: create (both types, idempotent by
`unique_reference_id`), list (page, sort, `filter[status]`), bad input (a 400 naming the field,
nothing written), real-time totals from ingested usage, charges as invoicing's `Billable`s
(pending, the due index), and an issued invoice booking them.

The API reads the real clock, so periods are set around the test's minute M.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared import bootstrap
from shared.invoices.billables import Origin
from tests.support import contract
from tests.support.billing import profile_body
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import VIEWER, Stack
from tests.support.invoices import external_profile
from tests.support.problems import fields, problem

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")

UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
NULL = "<null>"  # a JSON null in a body (None drops the field)
M = datetime.now(UTC).replace(second=0, microsecond=0)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def period(start: datetime, end: datetime) -> dict[str, str]:
    return {"from": iso(start), "to": iso(end)}


@pytest.fixture
def world(stack: Stack) -> dict[str, Any]:
    meter = stack.request(
        "POST",
        "/meters",
        {"key": "agent_runs", "name": "Agent runs", "aggregation": "count", "event_type": "agent_run"},
    )
    assert meter.status == 201, meter
    feature = stack.request(
        "POST", "/features", {"key": "agent_run", "name": "Agent run", "meter": {"id": meter.json()["id"]}}
    )
    assert feature.status == 201, feature
    assert stack.request("POST", "/features", {"key": "sso", "name": "SSO"}).status == 201
    body = {"key": "acme", "name": "Acme", "usage_attribution": {"subject_keys": ["acme-a"]}}
    customer = stack.request("POST", "/customers", body)
    assert customer.status == 201, customer
    return {"customer": customer.json()["id"]}


def flat_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "flat_fee",
        "name": "Onboarding",
        "currency": "USD",
        "invoice_at": iso(M - timedelta(days=10)),
        "service_period": period(M - timedelta(days=10), M + timedelta(days=5)),
        "full_service_period": period(M - timedelta(days=10), M + timedelta(days=20)),
        "settlement_mode": "credit_then_invoice",
        "payment_term": "in_advance",
        "proration_configuration": {"mode": "prorate_prices"},
        "amount_before_proration": {"amount": "300", "currency": "USD"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def usage_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "usage_based",
        "name": "Agent runs",
        "currency": "USD",
        "invoice_at": iso(M + timedelta(hours=1)),
        "service_period": period(M - timedelta(hours=1), M + timedelta(hours=1)),
        "settlement_mode": "credit_then_invoice",
        "feature_key": "agent_run",
        "price": {"type": "unit", "amount": "1"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def path(customer: str, query: str = "") -> str:
    return f"/customers/{customer}/charges{query}"


def create(stack: Stack, customer: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = stack.request("POST", path(customer), body)
    assert resp.status == 201, resp
    contract.validate(resp, "create-customer-charges")
    return resp.json()


def listed(stack: Stack, customer: str, query: str = "") -> dict[str, Any]:
    resp = stack.request("GET", path(customer, query))
    assert resp.status == 200, resp
    contract.validate(resp, "list-customer-charges")
    return resp.json()


# -- create ----------------------------------------------------------------------------------------
def test_create_flat_fee_prorates_and_answers_the_contract_shape(stack: Stack, world: dict[str, Any]) -> None:
    cid = world["customer"]
    charge = create(stack, cid, flat_body(discounts={"percentage": 10}, labels={"deal": "q1"}))
    assert charge["type"] == "flat_fee" and charge["customer"] == {"id": cid}
    assert charge["status"] == "active" and charge["lifecycle_controller"] == "system"
    # 15 of 30 days: 300 x 15/30.
    assert charge["amount_after_proration"] == {"amount": "150", "currency": "USD"}
    assert charge["price"] == {"type": "flat", "amount": "300"}
    assert charge["billing_period"] == charge["full_service_period"]
    assert charge["discounts"] == {"percentage": 10} and charge["labels"] == {"deal": "q1"}
    assert charge["advance_after"] == charge["invoice_at"]
    assert "totals" not in charge  # flat fees have none in the contract


def test_create_usage_based_starts_with_zero_booked_totals(stack: Stack, world: dict[str, Any]) -> None:
    later = usage_body(
        service_period=period(M + timedelta(days=1), M + timedelta(days=2)),
        invoice_at=iso(M + timedelta(days=2)),
        discounts={"usage": "5", "percentage": 12.5},
        price={
            "type": "graduated",
            "tiers": [
                {"up_to_amount": "10", "unit_price": {"type": "unit", "amount": "2"}},
                {"unit_price": {"type": "unit", "amount": "1"}},
            ],
        },
    )
    charge = create(stack, world["customer"], later)
    assert charge["status"] == "created" and charge["advance_after"] == iso(M + timedelta(days=1))
    assert charge["feature_key"] == "agent_run" and charge["discounts"] == {"usage": "5", "percentage": 12.5}
    assert charge["totals"]["booked"]["total"] == "0" and "realtime" not in charge["totals"]
    assert charge["price"]["type"] == "graduated" and len(charge["price"]["tiers"]) == 2


def test_unique_reference_id_replays_the_same_body_and_refuses_another(
    stack: Stack, world: dict[str, Any]
) -> None:
    cid = world["customer"]
    first = create(stack, cid, flat_body(unique_reference_id="order-1"))
    again = create(stack, cid, flat_body(unique_reference_id="order-1"))
    assert again["id"] == first["id"]
    other = stack.request("POST", path(cid), flat_body(unique_reference_id="order-1", name="Other"))
    body = problem(other, 400, "unique_reference_id")
    assert first["id"] in body["invalid_parameters"][0]["reason"]
    contract.validate(other, "create-customer-charges")
    assert [c["id"] for c in listed(stack, cid)["data"]] == [first["id"]]


# -- bad input: a 400 naming the field, nothing written ----------------------------------------------
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("flat", {"type": "other"}, "type"),
    ("flat", {"name": ""}, "name"),
    ("flat", {"currency": "usd"}, "currency"),
    ("flat", {"currency": "XXX", "amount_before_proration": {"amount": "1", "currency": "XXX"}}, "currency"),
    (
        "flat",
        {"amount_before_proration": {"amount": "1", "currency": "EUR"}},
        "amount_before_proration.currency",
    ),
    (
        "flat",
        {"amount_before_proration": {"amount": "-1", "currency": "USD"}},
        "amount_before_proration.amount",
    ),
    (
        "flat",
        {"amount_before_proration": {"amount": "1e3", "currency": "USD"}},
        "amount_before_proration.amount",
    ),
    ("flat", {"payment_term": None}, "payment_term"),
    ("flat", {"payment_term": "later"}, "payment_term"),
    ("flat", {"proration_configuration": {"mode": "sometimes"}}, "proration_configuration.mode"),
    ("flat", {"settlement_mode": "credit_first"}, "settlement_mode"),
    ("flat", {"invoice_at": "yesterday"}, "invoice_at"),
    ("flat", {"service_period": period(M, M)}, "service_period.to"),
    ("flat", {"full_service_period": period(M, M + timedelta(days=1))}, "full_service_period"),
    ("flat", {"discounts": {"percentage": 101}}, "discounts.percentage"),
    ("flat", {"discounts": {"percentage": "10"}}, "discounts.percentage"),
    ("flat", {"feature_key": "nope"}, "feature_key"),
    ("flat", {"tax_config": {"tax_code": {"id": UNKNOWN_ULID}}}, "tax_config.tax_code.id"),
    ("flat", {"tax_config": {"stripe": {"code": "txcd_1"}}}, "tax_config.stripe.code"),
    ("flat", {"extra": 1}, "extra"),
    ("flat", {"description": NULL}, "description"),
    ("usage", {"feature_key": None}, "feature_key"),
    ("usage", {"feature_key": "sso"}, "feature_key"),
    ("usage", {"price": {"type": "unit"}}, "price.amount"),
    ("usage", {"price": {"type": "tiered"}}, "price.type"),
    ("usage", {"price": {"type": "unit", "amount": "-1"}}, "price.amount"),
    ("usage", {"discounts": {"usage": "-1"}}, "discounts.usage"),
    ("usage", {"invoice_at": iso(M)}, "invoice_at"),
    ("usage", {"payment_term": "in_advance"}, "payment_term"),
]


@pytest.mark.parametrize(
    ("kind", "change", "field"), BAD, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(BAD)]
)
def test_bad_create_names_the_field_and_writes_nothing(
    stack: Stack, world: dict[str, Any], kind: str, change: dict[str, Any], field: str
) -> None:
    cid = world["customer"]
    body = flat_body(**change) if kind == "flat" else usage_body(**change)
    body = {k: None if v == NULL else v for k, v in body.items()}
    resp = stack.request("POST", path(cid), body)
    assert field in fields(resp), resp.json()
    contract.validate(resp, "create-customer-charges")
    assert listed(stack, cid)["data"] == []


def test_bad_bodies_and_paths(stack: Stack, world: dict[str, Any]) -> None:
    cid = world["customer"]
    assert fields(stack.request("POST", path(cid), [1])) == ["body"]
    assert fields(stack.request("POST", path(cid), b"{")) == ["body"]
    assert fields(stack.request("POST", path("acme"), flat_body())) == ["customerId"]
    # The contract declares no 404 on create: an unknown customer is a bad path parameter there.
    assert fields(stack.request("POST", path(UNKNOWN_ULID), flat_body())) == ["customerId"]
    problem(stack.request("GET", path(UNKNOWN_ULID)), 404)
    problem(stack.request("POST", path(cid), flat_body(), token=VIEWER), 403)


# -- list ------------------------------------------------------------------------------------------
def test_list_pages_sorts_and_filters_by_status(stack: Stack, world: dict[str, Any]) -> None:
    cid = world["customer"]
    active = create(stack, cid, flat_body(name="a"))
    future = create(
        stack,
        cid,
        flat_body(
            name="b",
            service_period=period(M + timedelta(days=3), M + timedelta(days=4)),
            full_service_period=None,
            billing_period=period(M - timedelta(days=30), M + timedelta(days=30)),
        ),
    )
    usage = create(stack, cid, usage_body())
    page = listed(stack, cid, "?page[size]=2")
    assert [c["id"] for c in page["data"]] == [active["id"], future["id"]]
    assert page["meta"]["page"] == {"number": 1, "size": 2, "total": 3}
    assert [c["id"] for c in listed(stack, cid, "?page[size]=2&page[number]=2")["data"]] == [usage["id"]]
    by_service = listed(stack, cid, "?sort=service_period.from%20desc")["data"]
    assert [c["id"] for c in by_service] == [future["id"], usage["id"], active["id"]]
    by_billing = listed(stack, cid, "?sort=billing_period.from")["data"]
    assert by_billing[0]["id"] == future["id"]
    newest = listed(stack, cid, "?sort=created_at%20desc")["data"]
    assert [c["id"] for c in newest] == [usage["id"], future["id"], active["id"]]
    assert [c["id"] for c in listed(stack, cid, "?filter[status][eq]=created")["data"]] == [future["id"]]
    assert {c["id"] for c in listed(stack, cid, "?filter[status][oeq]=created,active")["data"]} == {
        active["id"],
        future["id"],
        usage["id"],
    }
    assert {c["id"] for c in listed(stack, cid, "?filter[status][neq]=created")["data"]} == {
        active["id"],
        usage["id"],
    }
    assert listed(stack, cid, "?filter[status]=final")["data"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?filter[status][eq]=open", "filter[status][eq]"),
        ("?filter[status][contains]=act", "filter[status][contains]"),
        ("?filter[status][eq]=active&filter[status][neq]=final", "filter[status]"),
        ("?filter[currency]=USD", "filter[currency]"),
        ("?sort=name", "sort"),
        ("?sort=id%20sideways", "sort"),
        ("?expand=everything", "expand"),
        ("?page[size]=0", "page[size]"),
        ("?limit=3", "limit"),
    ],
)
def test_bad_list_queries_name_the_parameter(
    stack: Stack, world: dict[str, Any], query: str, field: str
) -> None:
    resp = stack.request("GET", path(world["customer"], query))
    assert fields(resp) == [field]
    contract.validate(resp, "list-customer-charges")


# -- real-time totals --------------------------------------------------------------------------------
def test_realtime_totals_rate_the_usage_so_far(stack: Stack, world: dict[str, Any]) -> None:
    cid = world["customer"]
    charge = create(stack, cid, usage_body(price={"type": "unit", "amount": "0.5"}))
    flat = create(stack, cid, flat_body())
    events = [
        {
            "id": f"run-{i}",
            "source": "test",
            "type": "agent_run",
            "subject": "acme-a",
            "time": iso(M - timedelta(minutes=10)),
        }
        for i in range(3)
    ]
    # One event before the service period: not this charge's usage.
    events.append(
        {
            "id": "early",
            "source": "test",
            "type": "agent_run",
            "subject": "acme-a",
            "time": iso(M - timedelta(hours=2)),
        }
    )
    assert stack.ingest(events).status == 202
    stack.drain()
    without = {c["id"]: c for c in listed(stack, cid)["data"]}
    assert "realtime" not in without[charge["id"]]["totals"]
    for query in ("?expand=real_time_usage", "?expand[]=real_time_usage"):
        rows = {c["id"]: c for c in listed(stack, cid, query)["data"]}
        realtime = rows[charge["id"]]["totals"]["realtime"]
        assert realtime["amount"] == "1.5" and realtime["total"] == "1.5"  # 3 runs x 0.5
        assert rows[charge["id"]]["totals"]["booked"]["amount"] == "0"
        assert "totals" not in rows[flat["id"]]
    # Archiving the feature (which frees its key) doesn't stop the charge measuring it.
    feature = stack.request("GET", "/features/agent_run").json()
    assert stack.request("DELETE", f"/features/{feature['id']}").status == 204
    rows = {c["id"]: c for c in listed(stack, cid, "?expand=real_time_usage")["data"]}
    assert rows[charge["id"]]["totals"]["realtime"]["amount"] == "1.5"


# -- billables ---------------------------------------------------------------------------------------
def test_pending_charges_are_billables(stack: Stack, world: dict[str, Any]) -> None:
    cid = world["customer"]
    flat = create(stack, cid, flat_body(tax_config={"behavior": "exclusive"}))
    usage = create(stack, cid, usage_body(discounts={"percentage": 10}))
    create(stack, cid, usage_body(settlement_mode="credit_only", name="Credits only"))
    billables = bootstrap.charge_billables()

    found = {b.key: b for b in billables.billables(cid, M)}
    assert set(found) == {f"charge/{flat['id']}", f"charge/{usage['id']}"}  # credit_only: never a line
    fb, ub = found[f"charge/{flat['id']}"], found[f"charge/{usage['id']}"]
    assert fb.origin == Origin(charge_id=flat["id"]) and fb.customer_id == cid
    assert fb.price.amount == Decimal(300) and fb.proration is not None and fb.proration.enabled
    assert fb.proration.full_period.end == M + timedelta(days=20)
    assert fb.invoice_at == M - timedelta(days=10) and fb.feature_key is None
    assert ub.feature_key == "agent_run" and ub.discounts is not None and ub.discounts.percentage == 10
    assert ub.service_period.start == M - timedelta(hours=1) and ub.billing_period == ub.service_period

    # Due by M: only the flat fee (the usage charge invoices at M+1h).
    assert list(billables.customers_to_bill(M)) == [cid]
    assert list(billables.customers_to_bill(M - timedelta(days=11))) == []


def test_issued_invoices_book_the_charges(stack: Stack, world: dict[str, Any]) -> None:
    """Invoice now (the default sandbox profile issues and settles at once): each charge's line books
    its totals as issued, after credits. The flat fee's only line closes it and is paid: final. The
    usage charge's line is the usage so far (its period runs to M+1h): booked, still active."""
    cid = world["customer"]
    assert stack.request("POST", "/profiles", profile_body(stack, default=True)).status == 201
    flat = create(stack, cid, flat_body())
    usage = create(
        stack, cid, usage_body(discounts={"percentage": 10}, price={"type": "unit", "amount": "0.5"})
    )
    runs = [
        {
            "id": f"b-{i}",
            "source": "t",
            "type": "agent_run",
            "subject": "acme-a",
            "time": iso(M - timedelta(minutes=5)),
        }
        for i in range(3)
    ]
    assert stack.ingest(runs).status == 202
    stack.drain()
    grant = {"name": "promo", "funding_method": "none", "currency": "USD", "amount": "1"}
    assert stack.request("POST", f"/customers/{cid}/credits/grants", grant).status == 201

    resp = stack.request("POST", f"/customers/{cid}/invoices/invoice-now")
    assert resp.status == 201, resp
    (inv,) = resp.json()
    assert inv["status_details"]["extended_status"] == "paid"
    lines = {line["name"]: line["totals"] for line in inv["lines"]}

    rows = {c["id"]: c for c in listed(stack, cid, "?expand=real_time_usage")["data"]}
    # The flat fee: 300 x 15/30 = 150.00; the $1 of credits goes to the first line (in line order).
    assert rows[flat["id"]]["status"] == "final" and "advance_after" not in rows[flat["id"]]
    assert lines["Onboarding"]["credits_total"] == "1.00" and lines["Onboarding"]["total"] == "149.00"
    # The usage so far: 3 runs x 0.50 = 1.50, 10% off = 0.15, total 1.35; booked as on the invoice.
    u = rows[usage["id"]]
    booked = u["totals"]["booked"]
    assert u["status"] == "active" and set(booked) == set(lines["Agent runs"])
    assert all(Decimal(booked[k]) == Decimal(v) for k, v in lines["Agent runs"].items())  # "1.5" == "1.50"
    assert (booked["amount"], booked["discounts_total"], booked["total"]) == ("1.5", "0.15", "1.35")
    assert booked["credits_total"] == "0"
    assert u["totals"]["realtime"]["amount"] == "1.5"  # real-time totals still rate the whole period so far

    # The flat fee left the due index and the billables; the usage charge is still to invoice.
    billables = bootstrap.charge_billables()
    assert [b.key for b in billables.billables(cid, M)] == [f"charge/{usage['id']}"]
    assert list(billables.customers_to_bill(M)) == []
    assert list(billables.customers_to_bill(M + timedelta(hours=1))) == [cid]
    assert [c["id"] for c in listed(stack, cid, "?filter[status][eq]=final")["data"]] == [flat["id"]]


def test_a_voided_invoice_unbooks_the_charge(stack: Stack, world: dict[str, Any]) -> None:
    """An external invoicing app leaves the issued invoice waiting for its payment: the charge is
    booked but active. Voiding the invoice un-books its line; the void discards the line (never billed
    again), so the charge's invoicing is over: final, with nothing booked."""
    cid = world["customer"]
    profile = external_profile(stack, "External")
    pin = stack.request("PUT", f"/customers/{cid}/billing", {"billing_profile": {"id": profile}})
    assert pin.status == 200, pin
    body = usage_body(
        service_period=period(M - timedelta(hours=2), M - timedelta(hours=1)),
        invoice_at=iso(M - timedelta(hours=1)),
        price={"type": "flat", "amount": "4"},  # a flat price on a usage charge: $4 whatever the usage
    )
    charge = create(stack, cid, body)
    resp = stack.request("POST", f"/customers/{cid}/invoices/invoice-now")
    assert resp.status == 201, resp
    (inv,) = resp.json()
    assert inv["status_details"]["extended_status"] == "payment_processing.pending"
    (row,) = listed(stack, cid)["data"]
    assert row["status"] == "active" and row["totals"]["booked"]["total"] == "4"
    assert "advance_after" not in row  # waiting on a payment: no time moves it

    voided = stack.request("POST", f"/invoices/{inv['id']}/void")
    assert voided.status == 200, voided
    (row,) = listed(stack, cid)["data"]
    assert row["id"] == charge["id"] and row["status"] == "final"
    assert row["totals"]["booked"]["amount"] == row["totals"]["booked"]["total"] == "0"
