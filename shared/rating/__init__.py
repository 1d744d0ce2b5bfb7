"""Rating: prices, discounts and commitments turned into exact, explainable amounts.

Pure (no I/O): `rate(BillableLine) -> RatedLine`. The rules are in `engine` (pipeline, progressive
billing, rounding), `quantities` (unit config, usage discount), `prices` (unit, graduated, volume),
`adjustments` (percentage discount, maximum and minimum spend, credits), `proration` (flat fees)
and `money` (ISO 4217 precision, half away from zero).
"""

from shared.rating.engine import rate, rate_all
from shared.rating.models import (
    AmountDiscount,
    BillableLine,
    Category,
    DetailedLine,
    DiscountReason,
    EndProrationMode,
    Period,
    Proration,
    RatedLine,
    Totals,
    UsageDiscount,
)

__all__ = [
    "AmountDiscount",
    "BillableLine",
    "Category",
    "DetailedLine",
    "DiscountReason",
    "EndProrationMode",
    "Period",
    "Proration",
    "RatedLine",
    "Totals",
    "UsageDiscount",
    "rate",
    "rate_all",
]
