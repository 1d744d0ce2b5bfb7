"""Pre-pricing mutators: metered quantity -> billing units -> billable units (engine-rules §2.7 "pre").

1. Unit config (product.md §8): `divide` or `multiply` the metered quantity by `conversion_factor`,
   then round with `rounding` (`ceiling`, `floor`, `half_up`, or `none`) to `precision` decimals.
   Package pricing is a unit price with `divide` + `ceiling` (20 per package: 98 -> 4.9 -> 5
   packages); per-unit-of-N pricing and dynamic (markup) pricing are the same with other settings.
2. Usage discount (product.md §7.4 ex. 8, §9): the period's first N billing units are free.

Both work on the period's cumulative quantity, never on a line alone: a line converts
`f(pre + quantity) - f(pre)` and takes free units `min(N, after) - min(N, before)`. So a package
is counted in the one line where usage first enters it (§2.7 "line bills packages(pre+line) -
packages(pre)"), and a usage discount is consumed across the lines of a period until depleted
(500 free, lines of 300 / 250 / 100: discounts 300 / 200 / 0, billed 0 / 50 / 100). OpenMeter
converts the pre-line and line quantities each on its own, so under `ceiling` two split lines can
bill more packages than the unsplit line; the cumulative form cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from shared.catalog.models import Discounts, Rounding, UnitConfig, UnitOperation
from shared.rating.models import UsageDiscount
from shared.rating.money import CONTEXT, quantum

_ROUNDING = {Rounding.CEILING: ROUND_CEILING, Rounding.FLOOR: ROUND_FLOOR, Rounding.HALF_UP: ROUND_HALF_UP}


def convert(metered: Decimal, config: UnitConfig | None) -> Decimal:
    """Billing units for a metered quantity (the rounded value: the one invoiced)."""
    if config is None:
        return metered
    if config.operation is UnitOperation.DIVIDE:
        value = CONTEXT.divide(metered, config.conversion_factor)
    else:
        value = CONTEXT.multiply(metered, config.conversion_factor)
    if config.rounding is Rounding.NONE:
        return value
    return value.quantize(quantum(config.precision), rounding=_ROUNDING[config.rounding], context=CONTEXT)


@dataclass(frozen=True)
class Billable:
    """Cumulative billable units of the period before the line and through its end."""

    before: Decimal
    after: Decimal
    usage_discount: UsageDiscount | None


def billable(
    pre: Decimal, quantity: Decimal, config: UnitConfig | None, discounts: Discounts | None
) -> Billable:
    before = convert(pre, config)
    after = convert(pre + quantity, config)
    free = discounts.usage if discounts is not None else None
    if not free:
        return Billable(before, after, None)
    taken_before = min(free, before)
    taken_after = min(free, after)
    applied = None
    if taken_after != taken_before:
        applied = UsageDiscount(quantity=taken_after - taken_before, pre_line_period_quantity=taken_before)
    return Billable(before - taken_before, after - taken_after, applied)
