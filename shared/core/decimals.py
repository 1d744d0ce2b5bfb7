"""Decimals on the wire: plain decimal strings, never exponents, no trailing zeros."""

from __future__ import annotations

from decimal import Decimal


def wire(value: Decimal) -> str:
    """`Decimal('1E+2')` -> "100", `Decimal('2.50')` -> "2.5", `Decimal('-0')` -> "0"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
