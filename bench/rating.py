"""The rating engine alone, in one process: `python -m bench.rating` (also run by `python -m bench`).

A five-line invoice, the shape issue 11's invoice run bills: a prorated in-advance flat fee, a
graduated usage price with a minimum commitment, a unit price with free units and a percentage
discount, a volume price, and a package price (unit + `divide`/`ceiling` unit config) split
mid-period (a progressive line that knows the usage before it). Rated again and again for about a
second; prints lines rated per second and microseconds per line. `measure()` returns the numbers,
for the invoice run's "whole run vs rating alone" ratio.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from decimal import Decimal

from shared.catalog.models import (
    Commitments,
    Discounts,
    PaymentTerm,
    Price,
    PriceType,
    Rounding,
    Tier,
    UnitConfig,
    UnitOperation,
)
from shared.rating import BillableLine, Period, Proration, rate

D = Decimal
MONTH = Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
LATE_START = Period(datetime(2026, 11, 16, tzinfo=UTC), MONTH.end)
TIERS = (Tier(up_to=D(1000), unit=D("0.3")), Tier(up_to=D(5000), unit=D("0.2")), Tier(unit=D("0.1")))


def five_line_invoice(seed: int) -> list[BillableLine]:
    """One customer's invoice; `seed` varies the quantities so nothing is cached by accident."""
    q = D(1000 + seed % 7919)
    return [
        BillableLine(
            "Platform fee",
            "USD",
            Price(PriceType.FLAT, amount=D("99")),
            LATE_START,
            payment_term=PaymentTerm.IN_ADVANCE,
            proration=Proration(MONTH),
        ),
        BillableLine(
            "Tokens",
            "USD",
            Price(PriceType.GRADUATED, tiers=TIERS),
            MONTH,
            quantity=q * 3,
            commitments=Commitments(minimum=D(500)),
        ),
        BillableLine(
            "API calls",
            "USD",
            Price(PriceType.UNIT, amount=D("0.0015")),
            MONTH,
            quantity=q * 11,
            discounts=Discounts(percentage=D(10), usage=D(1000)),
        ),
        BillableLine("Seats", "USD", Price(PriceType.VOLUME, tiers=TIERS), MONTH, quantity=q),
        BillableLine(
            "Storage",
            "USD",
            Price(PriceType.UNIT, amount=D(10)),
            LATE_START,
            quantity=q,
            pre_line_quantity=q / 2,
            split_period=MONTH,
            unit_config=UnitConfig(UnitOperation.DIVIDE, D(20), Rounding.CEILING),
            commitments=Commitments(maximum=D(2000)),
        ),
    ]


def measure(seconds: float = 1.0) -> dict[str, float]:
    invoices = [five_line_invoice(i) for i in range(1000)]
    lines = done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for line in invoices[done % len(invoices)]:
            rate(line)
        lines += 5
        done += 1
    elapsed = time.perf_counter() - t0
    return {
        "lines": lines,
        "seconds": elapsed,
        "lines_per_s": lines / elapsed,
        "us_per_line": elapsed / lines * 1e6,
    }


def report(seconds: float = 1.0) -> None:
    m = measure(seconds)
    print(
        f"rating engine alone: five-line invoices, {m['lines']:,.0f} lines in {m['seconds']:.2f} s:"
        f" {m['lines_per_s']:,.0f} lines/s/core ({m['us_per_line']:.1f} us/line,"
        f" {m['us_per_line'] * 5 / 1000:.3f} ms per invoice)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rating")
    parser.add_argument("--seconds", type=float, default=1.0)
    report(parser.parse_args().seconds)


if __name__ == "__main__":
    main()
