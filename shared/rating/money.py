"""Currency precision and rounding for rated amounts (engine-rules §2.7, product.md §9, §14).

The precision of a currency is its ISO 4217 minor unit, read from the `iso4217` package (the
standard's own table, kept up to date by its maintainer), not typed in here: USD and EUR 2, JPY
and KRW 0, KWD, BHD and TND 3. CLDR (Babel's `get_currency_precision`) differs for some (AFN and
ALL: 0 display decimals, 2 minor units in ISO 4217), which is why the invoice math does not read
it. Codes without a minor unit (XAU, XXX: metals, testing, funds) cannot be invoiced and are refused.

Rounding is half away from zero (`ROUND_HALF_UP` on Decimal) to the currency's precision.
Every computation of the engine runs in `CONTEXT`: 100 significant digits, so a product of a
12-decimal unit price and a large quantity is exact and a tie is never made or unmade by an
intermediate rounding.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from functools import lru_cache

from iso4217 import Currency

from shared.core.errors import InvalidInput

CONTEXT = Context(prec=100, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])


@lru_cache(maxsize=512)
def currency_precision(code: str) -> int:
    """ISO 4217 minor-unit digits of `code`; InvalidInput for an unknown or non-invoiceable code."""
    try:
        exponent = Currency(code).exponent
    except ValueError:
        raise InvalidInput.field("currency", f"{code!r} is not an ISO 4217 currency code") from None
    if exponent is None:
        raise InvalidInput.field("currency", f"{code} has no minor unit in ISO 4217 and cannot be invoiced")
    return exponent


@lru_cache(maxsize=16)
def quantum(precision: int) -> Decimal:
    """The smallest amount at `precision` decimals: 2 -> Decimal('0.01'), 0 -> Decimal('1')."""
    return Decimal(1).scaleb(-precision)


def round_amount(value: Decimal, precision: int) -> Decimal:
    """Half away from zero to `precision` decimals: 0.005 -> 0.01, -0.005 -> -0.01, 2.5 (JPY) -> 3."""
    return value.quantize(quantum(precision), rounding=ROUND_HALF_UP, context=CONTEXT)
