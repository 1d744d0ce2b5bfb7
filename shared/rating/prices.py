"""Price calculators for usage prices, as cumulative functions of the period's billable units.

Each returns the period's components up to `x` billable units — every component a future detailed
line (its key, cumulative quantity, unit price and cumulative amount rounded to the currency). A
line bills the difference between the components at its end and at its start (see the engine).

- unit: `x * amount` (product.md §7.4 ex. 1: 10,000 tokens at $0.01 = $100).
- graduated: the tiers are walked over `(0, x]`; tier i covers `(up_to[i-1], up_to[i]]`
  (`up_to_amount` is inclusive: with a first tier up to 1,000, unit 1,000 is still in it). Each
  tier bills its unit price for the units inside it, and its flat price once the tier is entered:
  the first tier always (Kong's documented behaviour, §7.4 ex. 4: $500 at zero usage; OpenMeter
  differs), a later one when usage exceeds its lower bound.
- volume: the tier that contains `x` prices every unit, plus that tier's flat price (§7.4 ex. 3:
  6,000 units, third tier $0.1 → $600); zero usage is in the first tier and pays its flat price.

A quantity above a bounded last tier has no price: refused, as OpenMeter refuses it
(`ErrInvoiceLineMissingOpenEndedTier`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.catalog.models import Price
from shared.core.errors import InvalidInput
from shared.rating.models import ZERO
from shared.rating.money import CONTEXT, round_amount

ONE = Decimal(1)


@dataclass(frozen=True)
class Component:
    key: str
    label: str  # appended to the line's name
    quantity: Decimal  # cumulative
    unit_price: Decimal
    amount: Decimal  # cumulative, rounded


def _priced(key: str, label: str, quantity: Decimal, unit_price: Decimal, precision: int) -> Component:
    amount = round_amount(CONTEXT.multiply(quantity, unit_price), precision)
    return Component(key, label, quantity, unit_price, amount)


def _beyond_last_tier(x: Decimal, bound: Decimal | None) -> InvalidInput:
    return InvalidInput.field(
        "price.tiers", f"quantity {x} is above the last tier's up_to_amount {bound}: no tier prices it"
    )


def unit(price: Price, x: Decimal, precision: int) -> list[Component]:
    assert price.amount is not None
    return [_priced("usage", "usage in period", x, price.amount, precision)]


def graduated(price: Price, x: Decimal, precision: int) -> list[Component]:
    out: list[Component] = []
    lower = ZERO
    for i, tier in enumerate(price.tiers):
        if i > 0 and x <= lower:
            return out  # not entered: neither this tier nor any above it
        n = i + 1
        inside = (x if tier.up_to is None else min(x, tier.up_to)) - lower
        if tier.unit is not None:
            out.append(_priced(f"tier-{n}-usage", f"usage price for tier {n}", inside, tier.unit, precision))
        if tier.flat is not None:
            out.append(_priced(f"tier-{n}-flat", f"flat price for tier {n}", ONE, tier.flat, precision))
        if tier.up_to is None:
            return out
        lower = tier.up_to
    if x > lower:
        raise _beyond_last_tier(x, lower)
    return out


def volume(price: Price, x: Decimal, precision: int) -> list[Component]:
    for i, tier in enumerate(price.tiers):
        if tier.up_to is None or x <= tier.up_to:
            n = i + 1
            out = []
            if tier.flat is not None:
                out.append(_priced("volume-flat", f"flat price for tier {n}", ONE, tier.flat, precision))
            if tier.unit is not None:
                out.append(_priced("volume-usage", f"unit price for tier {n}", x, tier.unit, precision))
            return out
    raise _beyond_last_tier(x, price.tiers[-1].up_to)
