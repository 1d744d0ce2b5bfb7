"""What the scheduled invoice run costs per customer when nothing is due, against moto:
`python -m bench.invoice_sweep [--customers N]` (default 300).

The customers of `bench.invoices` (one made through the handlers, the rest clones of its items:
a monthly plan with an in-advance fee and four usage cards, a few events in October), billed by the
scheduled run (`InvoiceService.sweep`, what the hourly EventBridge rule calls) on a clock this bench
sets: their first invoice on 10-15, the five-line one on 11-01T02:10. Then a quiet day, 11-05, when
nothing is due for anyone: 24 hourly runs (00:10 to 23:10, the schedule's minute), counted together
(with the day's full sweep, once the run has one), and one more run after them.

Prints, per customer: DynamoDB requests (by operation) and seconds of a quiet day's runs, and of
the 11-01 run that invoices (so a cheaper quiet day is not paid for on the busy one); and the
customers each run visited (`process` calls).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
from moto import mock_aws

from bench.harness import READ_OPS, Bench
from bench.invoices import (
    D0,
    NOV,
    clone_customers,
    seed_catalog,
    seed_template,
    template_items,
)

QUIET_DAY = datetime(2026, 11, 5, 0, 10, tzinfo=D0.tzinfo)


def setup(b: Bench, customers: int) -> list[str]:
    """`customers` subscribed customers like bench.invoices' (one real, the rest clones); their ids."""
    from functions.api.handler import lambda_handler as api

    def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = api(b.api_event(method, path, body if body is not None else b""), None)
        assert resp["statusCode"] == status, resp
        return orjson.loads(resp["body"]) if resp["body"] else None

    clock = seed_catalog(call)
    template_id, _events, before, after = seed_template(b, call, clock["id"])
    template, fresh = template_items(before, after, template_id)
    return [template_id, *clone_customers(b, template, fresh, template_id, customers - 1)]


def run(customers: int) -> None:
    from shared import bootstrap

    b = Bench()
    t0 = time.perf_counter()
    setup(b, customers)
    print(f"setup: {customers} customers in {time.perf_counter() - t0:.1f} s")
    at = [D0]
    service = bootstrap.build_invoices(now_for=lambda _customer: at[0])
    process = service.process
    visited = [0]

    def counted(customer_id: str, now: datetime, invoice_ids: Any = ()) -> int:
        visited[0] += 1
        return process(customer_id, now, invoice_ids)

    service.process = counted  # type: ignore[method-assign]

    def sweep(until: datetime) -> tuple[float, int]:
        at[0] = until
        bootstrap.new_invocation()
        started = time.perf_counter()
        service.sweep(until)
        assert service.failures == 0
        return time.perf_counter() - started, visited[0]

    def report(label: str, runs: list[datetime]) -> None:
        b.reset_counts()
        visited[0] = 0
        seconds = sum(sweep(t)[0] for t in runs)
        total = sum(b.calls.values())
        reads = sum(n for op, n in b.calls.items() if op in READ_OPS)
        by_op = ", ".join(f"{op} {n / customers:.2f}" for op, n in sorted(b.calls.items()))
        print(
            f"{label}: {len(runs)} run(s), {visited[0] / customers:.2f} visits per customer; "
            f"{total / customers:.2f} DynamoDB requests per customer ({reads / customers:.2f} reads: "
            f"{by_op}); {seconds / customers * 1000:.1f} ms per customer"
        )

    sweep(D0 + timedelta(hours=2, minutes=10))  # the first invoices (not measured)
    report("11-01T02:10, the run that invoices (five-line invoices)", [NOV + timedelta(hours=2, minutes=10)])
    sweep(NOV + timedelta(hours=3, minutes=10))  # anything the invoicing run left due (not measured)
    report(
        "11-05, a quiet day (24 hourly runs, nothing due)",
        [QUIET_DAY + timedelta(hours=h) for h in range(24)],
    )
    # After the day's full sweep (due once a day since the last), before the next.
    report("11-05T23:40, one more quiet run", [QUIET_DAY + timedelta(hours=23, minutes=30)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.invoice_sweep")
    parser.add_argument("--customers", type=int, default=300, help="subscribed customers (default 300)")
    args = parser.parse_args()
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        run(args.customers)


if __name__ == "__main__":
    main()
