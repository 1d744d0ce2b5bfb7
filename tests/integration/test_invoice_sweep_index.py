"""The scheduled invoice run visits only customers with something to do (shared/invoices/service.py
`sweep`): the subscriptions' sync index (a subscription written, a service period started), the
gathering heads' due entries (a due line, a scheduled late-usage check), due invoices; a daily full
sweep with a stored cursor as the fallback; a time budget per invocation.

Equivalence: customers billed by the indexed run end with the invoices of customers synced on every
run (the behaviour before the indexes), late usage included. Exactly once: the run killed after each
of its DynamoDB writes (the index marks, the heads' due moves, the sweep's cursor) and run again
ends as a clean run does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from shared import bootstrap
from shared.invoices import service as invoice_service
from shared.invoices.service import InvoiceService
from shared.rating.models import Period
from tests.support.billing import profile_body
from tests.support.catalog import features, flat_card, plan_body, usage_card
from tests.support.harness import Stack
from tests.support.invoices import FakeSource, flat_billable
from tests.support.subscriptions import MovableClock, customer, d, install_clock, subscribe

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
OCT, NOV = d("2026-10-01T00:00:00Z"), d("2026-11-01T00:00:00Z")


QUIET = [False]  # ingesting: its writes are not the invoice run's (no crash is injected in them)


class Crash(BaseException):
    """A kill, not an error: the per-customer isolation of a run does not catch it."""


@dataclass
class World:
    stack: Stack
    clock: MovableClock
    svc: InvoiceService
    visits: Counter[str] = field(default_factory=Counter)


def world(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> World:
    """A sandbox profile, a monthly plan (a $99 in-advance fee, tokens at $0.01 in arrears), the
    real sources (subscriptions, charges), every customer's now on one movable clock."""
    clock = install_clock(d("2026-09-20T00:00:00Z"))
    assert stack.request("POST", "/profiles", profile_body(stack, default=True)).status == 201
    f = features(stack)
    phases = [{"key": "default", "name": "Default", "rate_cards": [flat_card(), usage_card(f["tokens"])]}]
    plan = stack.request("POST", "/plans", plan_body(phases=phases)).json()
    assert stack.request("POST", f"/plans/{plan['id']}/publish").status == 200
    svc = bootstrap.build_invoices(now_for=clock.now_for)
    monkeypatch.setattr(bootstrap, "invoices", lambda: svc)
    w = World(stack, clock, svc)
    process = svc.process

    def counted(customer_id: str, now: datetime, invoice_ids: Iterable[str] = ()) -> int:
        w.visits[customer_id] += 1
        return process(customer_id, now, invoice_ids)

    svc.process = counted  # type: ignore[method-assign]
    return w


def subscribed(w: World, key: str) -> str:
    cid = str(customer(w.stack, key)["id"])
    at, w.clock.at = w.clock.at, OCT
    created = subscribe(w.stack, cid, billing_anchor="2026-10-01T00:00:00Z")
    w.clock.at = at
    assert created.status == 201, created
    return cid


def tokens(w: World, key: str, at: str, n: int) -> None:
    event = {
        "specversion": "1.0",
        "id": f"{key}-{at}-{n}",
        "source": "t",
        "type": "prompt",
        "subject": f"{key}-a",
        "time": at,
        "data": {"tokens": n},
    }
    QUIET[0] = True
    try:
        assert w.stack.ingest([event]).status == 202
        w.stack.drain()
    finally:
        QUIET[0] = False


def invoices(w: World, cid: str) -> list[tuple[Any, ...]]:
    """The customer's standard invoices as the API shows them, without ids, numbers or dates."""
    listed = w.stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()["data"]
    out = []
    for entry in listed:
        inv = w.stack.request("GET", f"/invoices/{entry['id']}").json()
        lines = sorted(
            (x["name"], x["period"]["from"], x["period"]["to"], x["totals"]["total"]) for x in inv["lines"]
        )
        out.append((inv["status_details"]["extended_status"], inv["totals"]["total"], tuple(lines)))
    return sorted(out, key=lambda i: (i[2], i[1]))


def sync_due(w: World, cid: str) -> str | None:
    """The customer's entry in the subscriptions' sync index (None: out of it)."""
    repo = bootstrap.subscriptions().repo
    item = repo.client.get_item(
        TableName=repo.table, Key={"pk": {"S": f"SUBCUST#{cid}"}, "sk": {"S": "SUBCUST"}}
    )["Item"]
    return item["gsi1sk"]["S"].split("#")[0] if "gsi1sk" in item else None


def heads_due(w: World, cid: str) -> list[datetime | None]:
    return [g.due for _, g in sorted(w.svc.repo.gatherings(cid).items())]


def test_the_indexed_run_bills_what_syncing_everyone_bills_and_visits_only_who_has_work(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(stack, monkeypatch)
    indexed = {k: subscribed(w, k) for k in ("ia", "ib", "ic")}
    everyone = {k: subscribed(w, k) for k in ("ea", "eb", "ec")}

    def run(at: str) -> str:
        """The indexed customers through their indexes (a test clock's step is the same run); the
        others synced whatever is due, as every hourly run did before."""
        w.clock.at = d(at)
        w.visits.clear()
        w.svc.run_due(list(indexed.values()), w.clock.at)
        due = w.svc.repo.due(w.clock.at)
        for cid in everyone.values():
            ids = [e["invoice_id"] for e in due if e["customer_id"] == cid and e["invoice_id"]]
            w.svc.process(cid, w.clock.at, ids)
        return "".join(k[1] for k, c in sorted(indexed.items()) for _ in range(w.visits[c]))

    def both(key: str, fn: Callable[[str], None]) -> None:
        fn("i" + key)
        fn("e" + key)

    assert run("2026-10-01T00:10:00Z") == "abc"  # subscribed: each due at once (October's fee)
    assert run("2026-10-01T01:10:00Z") == "abc"  # their drafts' collection, an hour on
    assert run("2026-10-01T02:10:00Z") == ""  # nothing due for anyone
    both("a", lambda k: tokens(w, k, "2026-10-15T10:00:00Z", 1200))
    assert run("2026-10-15T12:10:00Z") == ""  # usage: measured when invoiced (the gathering reads it live)
    for cid in (indexed["ib"], everyone["eb"]):  # b cancels on Oct 20
        sub_id = bootstrap.subscriptions().repo.for_customer(cid)[1][0].id
        w.clock.at = d("2026-10-20T09:00:00Z")
        canceled = w.stack.request("POST", f"/subscriptions/{sub_id}/cancel", {"timing": "immediate"})
        assert canceled.status == 200, canceled
    assert run("2026-10-20T09:10:00Z") == "b"  # only b: its subscription was written
    assert run("2026-10-20T10:10:00Z") == "b"  # b's draft's collection
    assert run("2026-10-21T10:10:00Z") == "b"  # b's late check, a day after its cut period
    assert run("2026-10-21T11:10:00Z") == ""
    assert run("2026-11-01T00:10:00Z") == "abc"  # Nov 1 (a, c); b's 7-day late check
    assert run("2026-11-01T01:10:00Z") == "ac"  # a's and c's drafts' collection
    # Late usage: October's tokens arriving after October was invoiced.
    both("a", lambda k: tokens(w, k, "2026-10-31T23:00:00Z", 300))
    assert run("2026-11-02T05:10:00Z") == "ac"  # 1-day late checks: a's late line
    assert run("2026-11-04T00:10:00Z") == "abc"  # a's late draft; c's 3-day, b's 14-day check
    assert run("2026-11-04T01:10:00Z") == ""
    assert run("2026-11-04T02:10:00Z") == ""
    assert run("2026-12-01T00:10:00Z") == "abc"  # Dec 1; b's 21- and 28-day checks
    assert run("2026-12-01T01:10:00Z") == "ac"

    for key in ("a", "b", "c"):
        got, want = invoices(w, indexed["i" + key]), invoices(w, everyone["e" + key])
        assert got == want, (key, got, want)
    # By hand, a: October's fee $99; on Nov 1 October's 1200 tokens x $0.01 = 12 + November's fee
    # = 111; the 300 late tokens x $0.01 = 3 on their own; on Dec 1 December's fee (no November usage).
    a = invoices(w, indexed["ia"])
    assert sorted(total for _, total, _ in a) == ["111.00", "3.00", "99.00", "99.00"], a
    assert all(status == "paid" for status, _, _ in a)
    assert sync_due(w, indexed["ib"]) is None  # ended and synced: out of the index
    assert sync_due(w, indexed["ic"]) == "2027-01-01T00:00:00.000000Z"


def test_the_scheduled_run_does_the_full_sweep_daily_and_stops_when_out_of_time(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(stack, monkeypatch)
    cids = [subscribed(w, f"s{n}") for n in range(5)]
    w.clock.at = d("2026-10-01T00:10:00Z")
    left = [2]

    def out_of_time() -> bool:
        left[0] -= 1
        return left[0] < 0

    w.svc.sweep(w.clock.at, out_of_time)
    assert not w.svc.complete and sum(w.visits.values()) == 2  # stopped: the rest stay due
    w.svc.sweep(w.clock.at)
    # the rest, then the first full sweep (it may visit again those the stopped run did: idempotent)
    assert w.svc.complete and sorted(w.visits) == sorted(cids)
    state = w.svc.repo.sweep_state()
    assert state is not None and state.cursor is None  # the first run did the full sweep too
    assert all(len(invoices(w, c)) == 1 for c in cids)

    w.clock.at = d("2026-10-01T01:10:00Z")
    w.svc.sweep(w.clock.at)  # the drafts' collection
    w.visits.clear()
    w.clock.at = d("2026-10-01T23:10:00Z")
    w.svc.sweep(w.clock.at)
    assert sum(w.visits.values()) == 0  # nothing due; the next full sweep is a day after the last
    monkeypatch.setattr(invoice_service, "_CURSOR_EVERY", 2)
    w.clock.at = d("2026-10-02T00:10:00Z")
    left[0] = 3
    w.svc.sweep(w.clock.at, out_of_time)  # the full sweep, stopped after three customers
    state = w.svc.repo.sweep_state()
    assert not w.svc.complete and state is not None and state.cursor == sorted(cids)[2]
    w.svc.sweep(w.clock.at)  # goes on from its cursor
    assert w.svc.complete and sorted(w.visits) == sorted(cids) and set(w.visits.values()) == {1}
    state = w.svc.repo.sweep_state()
    assert state is not None and state.cursor is None and state.started_at == d("2026-10-02T00:10:00Z")
    assert all(len(invoices(w, c)) == 1 for c in cids)  # the sweep found nothing more to bill


# -- exactly once ----------------------------------------------------------------------------------
def killed_after(svc: InvoiceService, k: int | None, fn: Callable[[], Any]) -> int:
    """Run `fn`, killed right after its k-th DynamoDB write (applied, never acknowledged); the
    number of writes it made."""
    writes = [0]

    def hook(model: Any, **_: Any) -> None:
        if model.name in WRITES and not QUIET[0]:
            writes[0] += 1
            if k is not None and writes[0] == k:
                raise Crash(f"after write {k} ({model.name})")

    ddb = svc.repo.client
    ddb.meta.events.register("after-call.dynamodb", hook)
    try:
        fn()
    finally:
        ddb.meta.events.unregister("after-call.dynamodb", hook)
    return writes[0]


def test_crash_after_every_write_of_indexed_runs_then_rerun_bills_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One customer per crash point, each through the same runs: November's (a draft and its
    collection, the index moved to March, the head to the first late check) and a late-usage check
    that finds October's late tokens. Killed after its k-th write, then both runs again, twice: the
    invoices, the sync index and the heads' due entries are a clean run's."""
    w = world(stack, monkeypatch)
    runs = ("2026-11-01T00:10:00Z", "2026-11-01T01:10:00Z", "2026-11-02T00:10:00Z", "2026-11-02T01:10:00Z")

    def prepared(key: str) -> str:
        cid = subscribed(w, key)
        w.clock.at = d("2026-10-01T00:10:00Z")
        w.svc.run_due([cid], w.clock.at)
        w.clock.at = d("2026-10-01T01:10:00Z")
        w.svc.run_due([cid], w.clock.at)
        tokens(w, key, "2026-10-15T10:00:00Z", 1200)
        keys[cid] = key
        return cid

    keys: dict[str, str] = {}

    def scenario(cid: str) -> None:
        for at in runs:
            w.clock.at = d(at)
            if at == runs[2]:  # late, after October was invoiced (sent again on a re-run: one event)
                tokens(w, keys[cid], "2026-10-31T23:00:00Z", 300)
            w.svc.run_due([cid], w.clock.at)

    def outcome(cid: str) -> tuple[Any, ...]:
        return (invoices(w, cid), sync_due(w, cid), heads_due(w, cid))

    reference = prepared("r")
    total = killed_after(w.svc, None, lambda: scenario(reference))
    truth = outcome(reference)
    assert sorted(total for _, total, _ in truth[0]) == ["111.00", "3.00", "99.00"], truth
    assert truth[1] == "2026-12-01T00:00:00.000000Z"
    assert truth[2] == [d("2026-11-04T00:00:00Z")]  # October's next late check: 3 days after its end
    for k in range(1, total + 1):
        cid = prepared(f"k{k}")
        with pytest.raises(Crash):
            killed_after(w.svc, k, lambda cid=cid: scenario(cid))  # type: ignore[misc]
        scenario(cid)
        scenario(cid)
        assert outcome(cid) == truth, f"crash after write {k}"


@dataclass
class Listed(FakeSource):
    """A source whose customers only the full sweep finds (no index lists them)."""

    swept: list[str] = field(default_factory=list)

    def customers_to_bill(self, now: datetime) -> Iterable[str]:
        return []

    def every_customer(self, now: datetime) -> Iterable[str]:
        return list(self.swept)


def test_crash_after_every_write_of_the_full_sweep_then_rerun_bills_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four customers only the full sweep lists, its cursor stored every two: killed after each write
    (the cursor's included) and run again, twice: each customer has its one invoice and the sweep is
    complete."""
    clock = install_clock(d("2026-11-01T02:10:00Z"))  # October's fee: due, collected and issued
    assert stack.request("POST", "/profiles", profile_body(stack, default=True)).status == 201
    source = Listed()
    svc = bootstrap.build_invoices(now_for=clock.now_for, sources=[source])
    monkeypatch.setattr(bootstrap, "invoices", lambda: svc)
    monkeypatch.setattr(invoice_service, "_CURSOR_EVERY", 2)
    fee = Period(OCT, NOV)

    def batch(k: int) -> list[str]:
        out = []
        for n in range(4):
            cid = str(customer(stack, f"f{k}x{n}")["id"])
            source.items[cid] = [flat_billable(cid, "s/default/base/v[0]/period[0]", "10", fee)]
            out.append(cid)
        repo = svc.repo
        repo.client.delete_item(TableName=repo.table, Key={"pk": {"S": "INVSWEEP"}, "sk": {"S": "INVSWEEP"}})
        source.swept = out
        return out

    def billed(cid: str) -> list[tuple[str, str]]:
        listed = stack.request("GET", f"/invoices?filter[customer_id]={cid}").json()["data"]
        return [(i["status"], i["totals"]["total"]) for i in listed]

    batch(0)
    total = killed_after(svc, None, lambda: svc.sweep(clock.at))
    assert all(billed(c) == [("paid", "10.00")] for c in source.swept)
    for k in range(1, total + 1):
        cids = batch(k)
        with pytest.raises(Crash):
            killed_after(svc, k, lambda: svc.sweep(clock.at))
        svc.sweep(clock.at)
        svc.sweep(clock.at)
        assert [billed(c) for c in cids] == [[("paid", "10.00")]] * 4, f"crash after write {k}"
        state = svc.repo.sweep_state()
        assert state is not None and state.cursor is None, f"crash after write {k}"


def test_the_function_stops_before_its_timeout_and_the_next_run_goes_on(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler asks the Lambda context for the time left: under `STOP_BEFORE_S` it takes no more
    customers (`complete: false`); the next invocation does what was left."""
    from datetime import UTC, timedelta

    from functions.invoice import handler as invoice_handler

    assert stack.request("POST", "/profiles", profile_body(stack, default=True)).status == 201
    now = datetime.now(UTC)
    period = Period(now - timedelta(days=3), now - timedelta(hours=2))  # ended 2 h ago: past the grace
    source = FakeSource()
    for n in range(3):
        cid = str(customer(stack, f"t{n}")["id"])
        source.items[cid] = [flat_billable(cid, "s/default/base/v[0]/period[0]", "10", period)]
    monkeypatch.setattr(bootstrap, "invoice_sources", lambda: [source])
    bootstrap.invoices.cache_clear()
    left = [invoice_handler.STOP_BEFORE_S * 1000 + 1]

    class Context:  # what Powertools reads, and the time left
        function_name = "meterline-invoice"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:meterline-invoice"
        aws_request_id = "req-1"

        def get_remaining_time_in_millis(self) -> int:
            left[0] -= 1  # one customer, then out of time
            return left[0]

    first = invoice_handler.lambda_handler({"source": "aws.events"}, Context())
    assert first["complete"] is False and first["steps"] == 1
    second = invoice_handler.lambda_handler({"source": "aws.events"}, None)
    assert second["complete"] is True and second["steps"] == 2
    assert all(
        [
            i["totals"]["total"]
            for i in stack.request("GET", f"/invoices?filter[customer_id]={c}").json()["data"]
        ]
        == ["10.00"]
        for c in source.items
    )
