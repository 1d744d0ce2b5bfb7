"""Stripe amounts are integers in the currency's minor units (ISO 4217 exponent), exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.invoices.stripe_invoicing import minor_units

D = Decimal


@pytest.mark.parametrize(
    ("amount", "currency", "cents"),
    [
        (D("12.34"), "USD", 1234),  # two decimals: x 100
        (D("17.3400"), "USD", 1734),  # trailing zeros of a rated total change nothing
        (D("-5.00"), "EUR", -500),  # a negative line (a credit, a discount) stays negative
        (D("1500"), "JPY", 1500),  # no minor unit: as is
        (D("1.234"), "KWD", 1234),  # three decimals: x 1000
        (D("0"), "USD", 0),
    ],
)
def test_minor_units(amount: Decimal, currency: str, cents: int) -> None:
    assert minor_units(amount, currency) == cents


def test_a_fraction_of_a_minor_unit_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="whole number"):
        minor_units(D("0.005"), "USD")
