"""Invoices end to end on moto: gathering sync, collection with the late-event grace, snapshot,
rating, issue with gap-free numbers, late usage, invoice now with progressive billing, the list and
refused actions. Billables come from a fake source (the subscription/charge producers are wired by
bootstrap); usage comes from real ingested events through the meter queries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.rating.models import Period
from tests.support.harness import Stack
from tests.support.invoices import (
    DEC,
    GRADUATED,
    JAN,
    NOV,
    UNIT_1C,
    Clock,
    FakeSource,
    flat_billable,
    install,
    setup_catalog,
    t,
    usage,
    usage_billable,
)
from tests.support.invoices import customer as make_customer

NOV_P = Period(NOV, DEC)
DEC_P = Period(DEC, JAN)


def test_collect_issue_late_usage_and_numbers(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_catalog(stack)
    cid = make_customer(stack, "acme")
    source = FakeSource(
        {
            cid: [
                flat_billable(cid, "sub1/default/base/v[0]/period[0]", "10", NOV_P),
                usage_billable(cid, "sub1/default/tokens/v[0]/period[0]", "tokens", UNIT_1C, NOV_P),
                flat_billable(cid, "sub1/default/base/v[0]/period[1]", "10", DEC_P),
            ]
        }
    )
    clock = Clock(t("2026-11-15T12:00:00"))
    svc = install(monkeypatch, clock, source)
    usage(stack, "acme", "tokens", t("2026-11-10T00:00:00"), 300)

    # Nov 15: the in-advance November fee is due (invoice_at Nov 1): collected and issued at once
    # (collection Nov 1 01:00 has passed, draft period P0D, sandbox settles it).
    svc.run_due([cid], clock.at)
    listed = stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()
    assert listed["meta"]["page"]["total"] == 1
    first = stack.request("GET", f"/invoices/{listed['data'][0]['id']}").json()
    assert first["number"] == "INV-2026-000001"
    assert first["status"] == "paid" and first["status_details"]["extended_status"] == "paid"
    assert first["totals"]["total"] == "10.00"
    assert [x["type"] for x in first["lines"]] == ["flat_fee"]
    assert first["customer"] == {"id": cid, "key": "acme", "name": "Acme"}
    assert first["supplier"]["name"] == "Meterline Ltd" and first["workflow"]["collection_interval"] == "PT1H"
    assert first["issued_at"] == "2026-11-15T12:00:00Z" and first["due_at"] == "2026-12-15T12:00:00Z"

    # The gathering invoice shows the usage so far (300 tokens x $0.01), never stored as final.
    gathering = stack.request("GET", f"/customers/{cid}/invoices/gathering").json()["data"]
    assert len(gathering) == 1 and gathering[0]["status"] == "gathering"
    both = stack.request("GET", f"/invoices?filter[customer_id]={cid}&filter[status][oeq]=gathering,paid")
    assert sorted(i["status"] for i in both.json()["data"]) == ["gathering", "paid"]
    (pending,) = gathering[0]["lines"]
    assert pending["metered_quantity"] == "300" and pending["totals"]["total"] == "3.00"
    usage(stack, "acme", "tokens", t("2026-11-14T00:00:00"), 200)
    again = stack.request("GET", f"/invoices/{gathering[0]['id']}").json()
    assert again["lines"][0]["metered_quantity"] == "500"

    # Dec 1 00:30: November's usage and December's fee are due; collection waits for the grace hour.
    clock.at = t("2026-12-01T00:30:00")
    svc.run_due([cid], clock.at)
    waiting = [i for i in stack.request("GET", "/invoices?filter[status]=draft").json()["data"]]
    assert len(waiting) == 1
    second_id = waiting[0]["id"]
    body = stack.request("GET", f"/invoices/{second_id}").json()
    assert body["status_details"]["extended_status"] == "draft.waiting_for_collection"
    assert body["status_details"]["available_actions"] == ["delete", "snapshot_quantities"]
    assert body["collection_at"] == "2026-12-01T01:00:00Z" and body["number"].startswith("DRAFT-")

    # An event inside the grace hour still counts.
    usage(stack, "acme", "tokens", t("2026-11-30T23:59:00"), 50)
    clock.at = t("2026-12-01T01:00:00")
    svc.run_due([cid], clock.at)
    second = stack.request("GET", f"/invoices/{second_id}").json()
    assert second["number"] == "INV-2026-000002" and second["status"] == "paid"
    by_type = {x["type"]: x for x in second["lines"]}
    # 550 tokens x $0.01 = $5.50, plus the $10 fee.
    assert by_type["usage_based"]["metered_quantity"] == "550"
    assert by_type["usage_based"]["totals"]["total"] == "5.50"
    assert second["totals"]["total"] == "15.50"
    assert second["quantity_snapshotted_at"] == "2026-12-01T01:00:00Z"
    assert second["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}

    # A late event for November: the next sync bills the difference on a late line naming November.
    usage(stack, "acme", "tokens", t("2026-11-25T00:00:00"), 100)
    clock.at = t("2026-12-02T00:00:00")
    svc.run_due([cid], clock.at)
    clock.at = t("2026-12-02T01:00:00")
    svc.run_due([cid], clock.at)
    svc.run_due([cid], clock.at)  # a re-run finds nothing more
    clock.at = t("2026-12-03T00:00:00")
    svc.run_due([cid], clock.at)
    everything = stack.request("GET", f"/invoices?filter[customer_id]={cid}&sort=created_at").json()["data"]
    assert [i["number"] for i in everything] == [f"INV-2026-00000{n}" for n in (1, 2, 3)]
    third = stack.request("GET", f"/invoices/{everything[2]['id']}").json()
    (late,) = third["lines"]
    assert late["late_usage"] is True and late["managed_by"] == "system"
    assert late["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    assert late["metered_pre_line_period_quantity"] == "550" and late["metered_quantity"] == "100"
    assert third["totals"]["total"] == "1.00"

    # Refused actions name the state.
    resp = stack.request("POST", f"/invoices/{third['id']}/approve")
    assert resp.status == 409
    assert resp.json()["detail"] == "invoice is in state paid: approve is not allowed"
    assert resp.json()["extended_status"] == "paid"
    void = stack.request("POST", f"/invoices/{gathering[0]['id']}/void")
    assert void.status == 409 and void.json()["extended_status"] == "gathering"


def test_invoice_now_splits_usage_and_the_remainder_continues(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_catalog(stack)
    cid = make_customer(stack, "beta")
    key = "sub1/default/tokens/v[0]/period[0]"
    source = FakeSource({cid: [usage_billable(cid, key, "tokens", GRADUATED, NOV_P)]})
    clock = Clock(t("2026-11-15T12:00:30"))
    svc = install(monkeypatch, clock, source)
    usage(stack, "beta", "tokens", t("2026-11-10T00:00:00"), 150)

    resp = stack.request("POST", "/customers/beta/invoices/invoice-now")
    assert resp.status == 201, resp
    (inv,) = resp.json()
    (line,) = inv["lines"]
    # Split at the minute: [Nov 1, Nov 15 12:00). 100 x $0.10 + 50 x $0.05 = $12.50.
    assert line["status"] == "split"
    assert line["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-11-15T12:00:00Z"}
    assert line["metered_quantity"] == "150" and line["totals"]["total"] == "12.50"
    assert inv["number"] == "INV-2026-000001"

    usage(stack, "beta", "tokens", t("2026-11-20T00:00:00"), 100)
    clock.at = t("2026-12-01T02:00:00")
    svc.run_due([cid], clock.at)
    listed = stack.request("GET", "/invoices?sort=-created_at&page[size]=1").json()
    assert listed["meta"]["page"]["total"] == 2
    rest = stack.request("GET", f"/invoices/{listed['data'][0]['id']}").json()
    (line,) = rest["lines"]
    # The remainder continues in tier 2: 100 x $0.05 = $5.00 (the unsplit period: 10 + 7.5 = 17.50).
    assert line["period"]["from"] == "2026-11-15T12:00:00Z"
    assert line["metered_pre_line_period_quantity"] == "150" and line["metered_quantity"] == "100"
    assert line["totals"]["total"] == "5.00"

    no_lines = stack.request("POST", f"/customers/{cid}/invoices/invoice-now")
    assert no_lines.status == 409 and no_lines.json()["code"] == "invoice_create_no_lines"


def test_a_vanished_billable_leaves_gathering_and_reruns_write_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_catalog(stack)
    cid = make_customer(stack, "gamma")
    fee = flat_billable(cid, "sub1/default/base/v[0]/period[1]", "10", DEC_P)
    used = usage_billable(cid, "sub1/default/tokens/v[0]/period[1]", "tokens", UNIT_1C, DEC_P)
    source = FakeSource({cid: [fee, used]})
    clock = Clock(t("2026-11-30T12:00:00"))
    svc = install(monkeypatch, clock, source)
    svc.sync(cid, DEC + timedelta(hours=-1) + timedelta(hours=2))
    writes: list[str] = []
    hook = lambda model, **_: writes.append(model.name)  # noqa: E731
    ddb = svc.repo.client
    ddb.meta.events.register("before-call.dynamodb", hook)
    try:
        svc.sync(cid, DEC + timedelta(hours=1))
    finally:
        ddb.meta.events.unregister("before-call.dynamodb", hook)
    assert [w for w in writes if w not in ("Query", "GetItem")] == []
    source.items[cid] = [fee]  # the subscription was cancelled: December's usage line vanishes
    svc.sync(cid, DEC + timedelta(hours=1))
    (g,) = stack.request("GET", f"/customers/{cid}/invoices/gathering").json()["data"]
    assert [x["type"] for x in g["lines"]] == ["flat_fee"]


def test_list_filters_and_bad_queries(stack: Stack) -> None:
    assert stack.request("GET", "/invoices?filter[status]=gathering").status == 400  # per customer only
    assert stack.request("GET", "/invoices?filter[status]=nope").status == 400
    assert stack.request("GET", "/invoices?filter[issued_at][gt]=2026-01-01T00:00:00Z").status == 400
    assert stack.request("GET", "/invoices?sort=number").status == 400
    assert stack.request("GET", "/invoices/not-a-ulid").status == 400
    assert stack.request("GET", "/invoices/01JAAAAAAAAAAAAAAAAAAAAAAA").status == 404
    ok = stack.request("GET", "/invoices?filter[issued_at][gte]=2026-01-01T00:00:00Z&page[size]=5")
    assert ok.status == 200 and ok.json()["data"] == []
    assert stack.request("POST", "/customers/nobody/invoices/invoice-now").status == 404
