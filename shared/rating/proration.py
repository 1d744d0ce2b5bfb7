"""Flat-fee proration (engine-rules §2.8, product.md §11.3).

A flat price covers its cadence period (`Proration.full_period`). When the line's service period is
shorter — a subscription starting mid-period, a phase change, an edit, a cancellation — the amount
becomes `amount * service / full`, with both durations exact (microseconds: Python's resolution;
OpenMeter uses nanoseconds, and no instant here is finer than a microsecond), rounded half away from
zero to the currency. $30 for a 30-day month, subscribed on the 16th: 15/30 * 30 = $15.

It never raises the amount (a service period as long as or longer than the full one, or an empty
one, bills the amount unchanged), applies only with the plan's `pro_rating_enabled`, and a period
cut short by the subscription's end (`subscription_end` at or before the line's end) is prorated
under the profile's `bill_actual_period` and charged in full under `bill_full_period`. Usage prices
are never prorated: their period simply holds less usage.
"""

from __future__ import annotations

from decimal import Decimal

from shared.rating.models import EndProrationMode, Period, Proration
from shared.rating.money import CONTEXT, round_amount


def prorated(amount: Decimal, period: Period, proration: Proration | None, precision: int) -> Decimal:
    full = round_amount(amount, precision)
    if proration is None or not proration.enabled:
        return full
    end = proration.subscription_end
    if end is not None and end <= period.end and proration.end_mode is EndProrationMode.BILL_FULL_PERIOD:
        return full
    service, whole = period.microseconds, proration.full_period.microseconds
    if service <= 0 or whole <= 0 or service >= whole:
        return full
    return round_amount(CONTEXT.divide(CONTEXT.multiply(amount, service), whole), precision)
