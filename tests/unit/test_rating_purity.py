"""The rating engine is pure: importing and running it loads nothing that talks to AWS or HTTP.

(import-linter's contract in pyproject.toml checks Meterline's own modules; this checks the
third-party ones it cannot see.)
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from datetime import UTC, datetime
from decimal import Decimal
from shared.catalog.models import Price, PriceType
from shared.rating import BillableLine, Period, rate
p = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
line = BillableLine("x", "USD", Price(PriceType.UNIT, amount=Decimal(1)), p, Decimal(2))
assert rate(line).totals.total == 2
print(" ".join(sorted(m for m in sys.modules)))
"""

FORBIDDEN = (
    "boto3",
    "botocore",
    "requests",
    "urllib3",
    "httpx",
    "shared.aws",
    "shared.api",
    "shared.settings",
)


def test_rating_loads_no_io_module():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "shared.rating.engine" in loaded
    assert not {m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
