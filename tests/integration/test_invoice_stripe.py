"""Stripe invoicing end to end over HTTP, against a Stripe stand-in that checks every request against
Stripe's OpenAPI spec and honours `Idempotency-Key` (tests/support/stripe_standin.py).

The customer (key `acme`, Stripe customer `cus_known1`) is billed a December fee of $10 in advance and
its November tokens at $0.01 each: 1234 tokens = $12.34. With a $5 credit grant, credits are applied
at issue to the first line that has a total, in line order: the fee ($10 -> $5).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from shared import bootstrap
from shared.invoices.service import InvoiceService
from shared.rating.models import Period
from tests.support import stripe_standin
from tests.support.billing import app_ids, profile_body
from tests.support.harness import Stack
from tests.support.invoices import (
    DEC,
    JAN,
    NOV,
    UNIT_1C,
    Clock,
    FakeSource,
    customer,
    flat_billable,
    install,
    setup_catalog,
    t,
    usage,
    usage_billable,
)
from tests.support.problems import problem
from tests.support.stripe_standin import WEBHOOK_SECRET, Stripe

RUN_AT = t("2026-12-01T02:00:00")  # the usage line's collection (Dec 1 00:00 + PT1H) has passed


@pytest.fixture
def stripe_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stripe]:
    with stripe_standin.running() as api:
        monkeypatch.setenv("STRIPE_API_KEY", stripe_standin.API_KEY)
        monkeypatch.setenv("STRIPE_API_BASE", api.base)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        yield api


class World:
    def __init__(self, stack: Stack, monkeypatch: pytest.MonkeyPatch, api: Stripe, **workflow: Any) -> None:
        bootstrap.reset()  # settings, the Stripe app and Stripe invoicing follow the environment
        setup_catalog(stack)
        self.stack, self.api = stack, api
        self.stripe_app = app_ids(stack)["stripe"]
        body = profile_body(stack, name="Stripe")
        body["apps"] = {k: {"id": self.stripe_app} for k in ("tax", "invoicing", "payment")}
        body["workflow"] = workflow
        resp = stack.request("POST", "/profiles", body)
        assert resp.status == 201, resp
        self.profile = resp.json()["id"]
        self.source, self.clock = FakeSource(), Clock(RUN_AT)
        self.svc: InvoiceService = install(monkeypatch, self.clock, self.source)

    def customer(
        self, key: str = "acme", stripe_customer: str | None = "cus_known1", credits: str | None = None
    ) -> str:
        cid = customer(self.stack, key, self.profile)
        if stripe_customer is not None:
            resp = self.stack.request(
                "PUT", f"/customers/{cid}/billing/app-data", {"stripe": {"customer_id": stripe_customer}}
            )
            assert resp.status == 200, resp
        self.source.items[cid] = [
            flat_billable(cid, "s/default/base/v[0]/period[1]", "10", Period(DEC, JAN)),
            usage_billable(cid, "s/default/tokens/v[0]/period[0]", "tokens", UNIT_1C, Period(NOV, DEC)),
        ]
        usage(self.stack, key, "tokens", t("2026-11-10T00:00:00"), 1234)
        if credits is not None:
            grant = {
                "name": "promo",
                "funding_method": "none",
                "currency": "USD",
                "amount": credits,
                "effective_at": "2026-11-01T00:00:00Z",
            }
            assert self.stack.request("POST", f"/customers/{cid}/credits/grants", grant).status == 201
        return cid

    def run(self, cid: str) -> dict[str, Any]:
        self.svc.run_due([cid], self.clock.at)
        listed = self.stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()["data"]
        assert len(listed) == 1, listed
        return self.get(listed[0]["id"])

    def get(self, invoice_id: str) -> dict[str, Any]:
        resp = self.stack.request("GET", f"/invoices/{invoice_id}")
        assert resp.status == 200, resp
        body: dict[str, Any] = resp.json()
        return body

    def webhook(self, event_type: str, stripe_invoice: str, event_id: str | None = None) -> Any:
        body, headers = self.api.event(event_type, stripe_invoice, event_id)
        return self.stack.request(
            "POST", f"/apps/{self.stripe_app}/stripe/webhook", body, token=None, headers=headers
        )


def status(inv: dict[str, Any]) -> str:
    return str(inv["status_details"]["extended_status"])


def amounts(api: Stripe, stripe_invoice: str) -> list[tuple[str, int]]:
    return sorted((i["description"].split(" ")[0], i["amount"]) for i in api.items_of(stripe_invoice))


def test_synced_approved_finalized_and_paid_through_the_webhook(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(
        stack,
        monkeypatch,
        stripe_api,
        invoicing={"auto_advance": False},
        payment={"collection_method": "send_invoice", "due_after": "P14D"},
    )
    cid = w.customer(credits="5")
    inv = w.run(cid)
    assert status(inv) == "draft.manual_approval_needed", inv["validation_issues"]
    stripe_id = inv["external_ids"]["invoicing"]
    assert inv["external_ids"] == {"invoicing": stripe_id, "payment": stripe_id}
    (created,) = stripe_api.calls("post", "/v1/invoices")
    assert created == {
        "customer": "cus_known1",
        "currency": "usd",
        "collection_method": "send_invoice",
        "days_until_due": "14",
        "auto_advance": "false",
        "pending_invoice_items_behavior": "exclude",
        "metadata": {"om_invoice_id": inv["id"], "om_customer_id": cid},
    }
    # Draft: no credits yet. base $10.00 = 1000 cents; tokens 1234 x $0.01 = $12.34 = 1234 cents.
    assert amounts(stripe_api, stripe_id) == [("base", 1000), ("tokens", 1234)]
    lines = {x["name"]: x for x in inv["lines"]}
    items = {i["metadata"]["om_line_id"]: i for i in stripe_api.items_of(stripe_id)}
    assert set(items) == {x["id"] for x in inv["lines"]}
    for line in inv["lines"]:
        item = items[line["id"]]
        assert line["external_ids"] == {"invoicing": item["id"]}
        assert item["period"] == {
            "start": int(t(line["period"]["from"].rstrip("Z")).timestamp()),
            "end": int(t(line["period"]["to"].rstrip("Z")).timestamp()),
        }
    assert items[lines["tokens"]["id"]]["description"] == "tokens (2026-11-01 00:00 - 2026-12-01 00:00 UTC)"
    assert stripe_api.state.invoices[stripe_id]["status"] == "draft"

    # Approve: credits ($5 on the fee: 1000 -> 500 cents), the items follow, Stripe finalizes; the
    # invoice then waits for Stripe (no sandbox settlement).
    resp = stack.request("POST", f"/invoices/{inv['id']}/approve")
    assert resp.status == 200, resp
    issued = w.get(inv["id"])
    assert status(issued) == "payment_processing.pending"
    assert issued["totals"]["total"] == "17.34"  # 22.34 - 5.00
    assert amounts(stripe_api, stripe_id) == [("base", 500), ("tokens", 1234)]
    sinv = stripe_api.state.invoices[stripe_id]
    assert (sinv["status"], sinv["total"], sinv["auto_advance"]) == ("open", 1734, True)
    assert issued["stripe"] == {
        "number": "MLTEST-0001",
        "hosted_url": f"https://invoice.stripe.com/i/{stripe_id}",
    }
    assert issued["number"] == "INV-2026-000001"  # Meterline's own gap-free number stays

    # Stripe reports the payment.
    resp = w.webhook("invoice.paid", stripe_id, "evt_paid_1")
    assert resp.status == 200, resp
    assert resp.json() == {
        "event_id": "evt_paid_1",
        "type": "invoice.paid",
        "status": "applied",
        "invoice": {"id": inv["id"], "extended_status": "paid"},
    }
    paid = w.get(inv["id"])
    assert status(paid) == "paid" and paid["paid_at"] == "2026-12-01T02:00:00Z"
    # Stripe redelivers (same event), or sends another paid: 200, nothing changes.
    assert w.webhook("invoice.paid", stripe_id, "evt_paid_1").json()["status"] == "unchanged"
    assert w.webhook("invoice.paid", stripe_id, "evt_paid_2").json()["status"] == "unchanged"
    assert w.webhook("invoice.payment_failed", stripe_id).json()["status"] == "unchanged"
    assert w.get(inv["id"])["updated_at"] == paid["updated_at"]
    # An event type the lifecycle does not use, and an invoice that is not Meterline's: ignored.
    assert w.webhook("invoice.finalized", stripe_id).json()["status"] == "ignored"
    stripe_api.state.invoices["in_other"] = {**sinv, "id": "in_other", "metadata": {}}
    assert w.webhook("invoice.paid", "in_other").json()["status"] == "ignored"
    # One Stripe invoice, two items, one finalize: nothing created twice.
    assert len(stripe_api.calls("post", "/v1/invoices")) == 1
    assert len(stripe_api.calls("post", "/v1/invoiceitems")) == 2
    assert len(stripe_api.calls("post", "/v1/invoiceitems/")) == 2  # brought to the issued amounts
    assert stripe_api.calls("post", f"/v1/invoices/{stripe_id}/finalize") == [{"auto_advance": "true"}]
    assert stripe_api.state.invalid == []  # every request as Stripe's spec has it


def test_a_bad_signature_is_a_400_and_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api)
    inv = w.run(w.customer())
    assert status(inv) == "payment_processing.pending"  # auto-advance, P0D: issued at once, waits
    stripe_id = inv["external_ids"]["invoicing"]
    body, headers = stripe_api.event("invoice.paid", stripe_id)
    path = f"/apps/{w.stripe_app}/stripe/webhook"
    forged = {**headers, "Stripe-Signature": stripe_standin.sign(body, "whsec_not_the_secret")}
    problem(stack.request("POST", path, body, token=None, headers=forged), 400, "Stripe-Signature")
    tampered = body.replace('"amount_paid": 0', '"amount_paid": 1')
    problem(stack.request("POST", path, tampered, token=None, headers=headers), 400, "Stripe-Signature")
    unsigned = {"Content-Type": "application/json"}
    problem(stack.request("POST", path, body, token=None, headers=unsigned), 400, "Stripe-Signature")
    stale = {**headers, "Stripe-Signature": stripe_standin.sign(body, WEBHOOK_SECRET, at=1_700_000_000)}
    problem(stack.request("POST", path, body, token=None, headers=stale), 400, "Stripe-Signature")
    assert status(w.get(inv["id"])) == "payment_processing.pending"
    # Only a Stripe app has a webhook; a token is no substitute for the signature.
    sandbox = app_ids(stack)["sandbox"]
    problem(stack.request("POST", f"/apps/{sandbox}/stripe/webhook", body, token=None, headers=headers), 404)
    problem(stack.request("POST", path, body, headers=unsigned), 400, "Stripe-Signature")
    # The token check is skipped for exactly this signed POST, nothing near it.
    assert stack.request("GET", path, token=None).status == 401
    assert stack.request("POST", path + "/x", body, token=None, headers=headers).status == 401
    assert stack.request("POST", f"/invoices/{inv['id']}/void", token=None).status == 401
    assert w.webhook("invoice.paid", stripe_id).json()["status"] == "applied"


def test_void_after_issue_voids_the_stripe_invoice(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api)
    inv = w.run(w.customer())
    stripe_id = inv["external_ids"]["invoicing"]
    assert stripe_api.state.invoices[stripe_id]["status"] == "open"
    resp = stack.request("POST", f"/invoices/{inv['id']}/void")
    assert resp.status == 200, resp
    assert status(w.get(inv["id"])) == "voided"
    assert stripe_api.state.invoices[stripe_id]["status"] == "void"
    # Stripe's own `invoice.voided` for it then changes nothing.
    assert w.webhook("invoice.voided", stripe_id).json()["status"] == "unchanged"


def test_a_void_stripe_reports_voids_the_invoice(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api)
    inv = w.run(w.customer())
    stripe_id = inv["external_ids"]["invoicing"]
    assert w.webhook("invoice.payment_failed", stripe_id).json()["status"] == "applied"
    assert status(w.get(inv["id"])) == "payment_processing.failed"
    assert w.webhook("invoice.payment_action_required", stripe_id).json()["status"] == "applied"
    assert status(w.get(inv["id"])) == "payment_processing.action_required"
    assert w.webhook("invoice.marked_uncollectible", stripe_id).json()["status"] == "applied"
    assert status(w.get(inv["id"])) == "uncollectible"
    assert w.webhook("invoice.voided", stripe_id).json()["status"] == "applied"
    voided = w.get(inv["id"])
    assert status(voided) == "voided" and "voided_at" in voided


def test_a_missing_stripe_customer_id_holds_the_draft_until_it_is_set(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api, invoicing={"auto_advance": False})
    cid = w.customer(stripe_customer=None)
    inv = w.run(cid)
    assert status(inv) == "draft.invalid"
    (issue,) = inv["validation_issues"]
    assert issue["field"] == "app_data.stripe.customer_id" and issue["severity"] == "critical"
    assert "app_data.stripe.customer_id" in issue["message"]
    assert stripe_api.state.requests == []  # Stripe was not asked
    w.stack.request("PUT", f"/customers/{cid}/billing/app-data", {"stripe": {"customer_id": "cus_known1"}})
    resp = stack.request("POST", f"/invoices/{inv['id']}/retry")
    assert resp.status == 200, resp
    fixed = w.get(inv["id"])
    assert status(fixed) == "draft.manual_approval_needed" and fixed["validation_issues"] == []
    assert amounts(stripe_api, fixed["external_ids"]["invoicing"]) == [("base", 1000), ("tokens", 1234)]


def test_stripe_refusing_the_sync_fails_it_and_retry_syncs_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api, invoicing={"auto_advance": False})
    cid = w.customer(stripe_customer="cus_deleted")
    inv = w.run(cid)
    assert status(inv) == "draft.sync_failed"
    assert inv["status_details"]["failed"] is True
    assert inv["status_details"]["available_actions"] == ["delete", "retry"]
    (issue,) = inv["validation_issues"]
    assert issue["code"] == "invoicing_app_sync_failed" and issue["field"] == "customer"
    assert "No such customer: 'cus_deleted'" in issue["message"]
    w.stack.request("PUT", f"/customers/{cid}/billing/app-data", {"stripe": {"customer_id": "cus_known2"}})
    assert stack.request("POST", f"/invoices/{inv['id']}/retry").status == 200
    fixed = w.get(inv["id"])
    assert status(fixed) == "draft.manual_approval_needed" and fixed["validation_issues"] == []
    assert stripe_api.state.invoices[fixed["external_ids"]["invoicing"]]["customer"] == "cus_known2"
    # A retried sync of a synced draft updates it: still one invoice and two items.
    assert len(stripe_api.state.invoices) == 1 and len(stripe_api.state.items) == 2


def test_stripe_unreachable_leaves_the_invoice_for_the_next_run(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api, invoicing={"auto_advance": False})
    cid = w.customer()
    stripe_api.state.fail_next = 1000
    inv = w.run(cid)
    assert status(inv) == "draft.syncing" and inv["validation_issues"] == []
    # Only a sync Stripe accepted moves it on: no `advance` past Stripe.
    assert inv["status_details"]["available_actions"] == ["delete"]
    problem(stack.request("POST", f"/invoices/{inv['id']}/advance"), 409)
    stripe_api.state.fail_next = 0
    again = w.run(cid)  # due at once: the next scheduled run asks again
    assert status(again) == "draft.manual_approval_needed"
    assert len(stripe_api.state.invoices) == 1


def test_issue_waits_for_stripe_and_a_refused_finalize_is_retried(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api, invoicing={"auto_advance": False})
    inv = w.run(w.customer(credits="5"))
    stripe_id = inv["external_ids"]["invoicing"]
    # Stripe unreachable at approval: the invoice waits in issuing.syncing, due for the next run; no
    # number taken yet. A payment event that arrives now is early: 409, Stripe delivers it again.
    stripe_api.state.fail_next = 1000
    assert stack.request("POST", f"/invoices/{inv['id']}/approve").status == 200
    waiting = w.get(inv["id"])
    assert status(waiting) == "issuing.syncing" and waiting["number"].startswith("DRAFT-")
    assert waiting["status_details"]["available_actions"] == []
    stripe_api.state.fail_next = 0
    problem(w.webhook("invoice.paid", stripe_id), 409)
    # Stripe refuses the finalize: issuing.sync_failed with its message; still no number, and the
    # credits are not taken twice when the retry issues it.
    stripe_api.state.refuse_finalize = "This customer has no default payment method."
    refused = w.run(inv["customer"]["id"])
    assert status(refused) == "issuing.sync_failed" and refused["number"].startswith("DRAFT-")
    (issue,) = refused["validation_issues"]
    assert issue["code"] == "invoicing_app_sync_failed"
    assert issue["message"] == "Stripe: This customer has no default payment method."
    assert refused["status_details"]["available_actions"] == ["retry"]
    stripe_api.state.refuse_finalize = ""
    assert stack.request("POST", f"/invoices/{inv['id']}/retry").status == 200
    issued = w.get(inv["id"])
    assert status(issued) == "payment_processing.pending" and issued["validation_issues"] == []
    assert (issued["number"], issued["totals"]["credits_total"], issued["totals"]["total"]) == (
        "INV-2026-000001",
        "5.00",
        "17.34",
    )
    assert amounts(stripe_api, stripe_id) == [("base", 500), ("tokens", 1234)]
    assert stripe_api.state.invoices[stripe_id]["status"] == "open"
    assert w.webhook("invoice.paid", stripe_id).json()["status"] == "applied"
    assert len(stripe_api.state.invoices) == 1 and stripe_api.state.invalid == []


def test_deleting_a_synced_draft_deletes_the_stripe_draft(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api, invoicing={"auto_advance": False})
    inv = w.run(w.customer())
    stripe_id = inv["external_ids"]["invoicing"]
    assert stack.request("DELETE", f"/invoices/{inv['id']}").status == 204
    assert status(w.get(inv["id"])) == "deleted"
    assert stripe_id not in stripe_api.state.invoices and stripe_api.state.items == {}


class Crash(BaseException):
    """A kill, not an error: the run's per-customer isolation does not catch it."""


WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def test_a_crash_after_any_write_then_a_rerun_creates_nothing_twice_in_stripe(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    """One customer per crash point: killed right after its k-th Stripe request (Stripe did it, the
    run never learnt so) or its k-th DynamoDB write, then run again twice. Each ends with one Stripe
    invoice, open, with its two items at the issued amounts, and the Meterline invoice pending with
    those ids: Stripe's idempotency keys turned every repeated request into a replay."""
    w = World(stack, monkeypatch, stripe_api)
    ddb = w.svc.repo.client
    counts = {"stripe": 0, "ddb": 0}
    crash_at: dict[str, int | None] = {"stripe": None, "ddb": None}

    real_factory = stripe.new_default_http_client

    def counting_client(*args: Any, **kwargs: Any) -> Any:
        client = real_factory(*args, **kwargs)
        send = client.request_with_retries

        def request_with_retries(*a: Any, **kw: Any) -> Any:
            out = send(*a, **kw)
            counts["stripe"] += 1
            if counts["stripe"] == crash_at["stripe"]:
                raise Crash(f"after Stripe request {counts['stripe']}")
            return out

        client.request_with_retries = request_with_retries  # type: ignore[method-assign]
        return client

    def ddb_hook(model: Any, **_: Any) -> None:
        if model.name in WRITES:
            counts["ddb"] += 1
            if counts["ddb"] == crash_at["ddb"]:
                raise Crash(f"after DynamoDB write {counts['ddb']}")

    monkeypatch.setattr(stripe, "new_default_http_client", counting_client)
    ddb.meta.events.register("after-call.dynamodb", ddb_hook)

    def run(cid: str, kind: str | None = None, k: int | None = None) -> None:
        counts.update(stripe=0, ddb=0)
        crash_at.update(stripe=None, ddb=None)
        if kind is not None:
            crash_at[kind] = k
        w.svc.run_due([cid], w.clock.at)

    def outcome(cid: str) -> tuple[Any, ...]:
        listed = stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()["data"]
        assert len(listed) == 1, listed
        inv = w.get(listed[0]["id"])
        mine = [s for s in stripe_api.state.invoices.values() if s["metadata"]["om_invoice_id"] == inv["id"]]
        assert len(mine) == 1, mine  # one Stripe invoice per Meterline invoice
        stripe_id = mine[0]["id"]
        assert inv["external_ids"]["invoicing"] == stripe_id
        assert {x["external_ids"]["invoicing"] for x in inv["lines"]} == {
            i["id"] for i in stripe_api.items_of(stripe_id)
        }
        return status(inv), mine[0]["status"], amounts(stripe_api, stripe_id), inv["totals"]["total"]

    try:
        reference = w.customer("c0", credits="5")
        run(reference)
        truth = outcome(reference)
        # $5 of credits on the fee: base 500, tokens 1234 cents; 17.34 in all.
        assert truth == ("payment_processing.pending", "open", [("base", 500), ("tokens", 1234)], "17.34")
        stripe_requests, ddb_writes = counts["stripe"], counts["ddb"]
        # create, 2 items; at issue: update, 2 item updates, finalize
        assert stripe_requests == 7
        n = 0
        for kind, total in (("stripe", stripe_requests), ("ddb", ddb_writes)):
            for k in range(1, total + 1):
                n += 1
                cid = w.customer(f"c{n}", credits="5")
                with pytest.raises(Crash):
                    run(cid, kind, k)
                run(cid)
                run(cid)
                assert outcome(cid) == truth, f"crash after {kind} {k}"
    finally:
        ddb.meta.events.unregister("after-call.dynamodb", ddb_hook)


def test_a_draft_deleted_in_stripe_is_made_again_at_issue(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, stripe_api: Stripe
) -> None:
    w = World(stack, monkeypatch, stripe_api, invoicing={"auto_advance": False})
    inv = w.run(w.customer())
    first = inv["external_ids"]["invoicing"]
    del stripe_api.state.invoices[first]  # someone deleted the draft in Stripe's dashboard
    stripe_api.state.items.clear()
    assert stack.request("POST", f"/invoices/{inv['id']}/approve").status == 200
    issued = w.get(inv["id"])
    assert status(issued) == "payment_processing.pending"
    second = issued["external_ids"]["invoicing"]
    assert second != first and stripe_api.state.invoices[second]["status"] == "open"
    assert amounts(stripe_api, second) == [("base", 1000), ("tokens", 1234)]
    assert {x["external_ids"]["invoicing"] for x in issued["lines"]} == {
        i["id"] for i in stripe_api.items_of(second)
    }


def test_the_stand_in_refuses_what_stripe_would() -> None:
    """Self-test of the spec check: the stand-in is only as good as the requests it refuses."""
    ok = {"customer": "cus_1", "amount": "100", "currency": "usd", "period": {"start": "1", "end": "2"}}
    stripe_standin.validate("post", "/v1/invoiceitems", ok)
    for bad, param in (
        ({**ok, "amount_cents": "100"}, "body"),  # not a parameter
        ({**ok, "amount": "1.5"}, "body[amount]"),  # not an integer
        ({**ok, "period": {"start": "1"}}, "body[period]"),  # period needs both ends
        ({k: v for k, v in ok.items() if k != "customer"}, "body"),  # required
    ):
        with pytest.raises(stripe_standin.StripeError) as refused:
            stripe_standin.validate("post", "/v1/invoiceitems", bad)
        assert refused.value.status == 400 and refused.value.param == param, bad
    with pytest.raises(stripe_standin.StripeError):
        stripe_standin.validate("post", "/v1/invoices", {"collection_method": "by_carrier_pigeon"})
    stripe_standin.validate("post", "/v1/invoices", {"customer": "cus_1", "currency": "usd"})  # newer param
    with pytest.raises(stripe_standin.StripeError) as unknown:
        stripe_standin.validate("post", "/v1/invoices/in_1/pay_twice", {})
    assert unknown.value.status == 404
