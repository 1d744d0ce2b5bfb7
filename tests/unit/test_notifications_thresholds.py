"""Threshold evaluation with exact numbers (engine rules §2.10)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from shared.notifications.models import Threshold, ThresholdType
from shared.notifications.thresholds import Kind, Snapshot, is_active, most_advanced

UV, UP, BV = ThresholdType.USAGE_VALUE, ThresholdType.USAGE_PERCENTAGE, ThresholdType.BALANCE_VALUE


def snap(usage: str, balance: str, total: str = "100") -> Snapshot:
    return Snapshot(D(usage), D(balance), D(total))


@pytest.mark.parametrize(
    ("threshold", "usage", "balance", "active"),
    [
        # usage_value: active when value < usage (strict)
        (Threshold(D("50"), UV), "50", "50", False),
        (Threshold(D("50"), UV), "50.0001", "49.9999", True),
        (Threshold(D("0"), UV), "0", "100", False),
        (Threshold(D("0"), UV), "0.01", "99.99", True),
        # usage_percentage: active when total x value / 100 < usage (total 100 -> 80 % = 80)
        (Threshold(D("80"), UP), "80", "20", False),
        (Threshold(D("80"), UP), "80.01", "19.99", True),
        (Threshold(D("0"), UP), "0", "100", False),
        (Threshold(D("0"), UP), "1", "99", True),
        (Threshold(D("150"), UP), "150.5", "-50.5", True),
        # balance_value: active when value > balance ...
        (Threshold(D("10"), BV), "90", "10", False),
        (Threshold(D("10"), BV), "90.5", "9.5", True),
        # ... or value = 0 and balance <= 0
        (Threshold(D("0"), BV), "99.9", "0.1", False),
        (Threshold(D("0"), BV), "100", "0", True),
        (Threshold(D("0"), BV), "120", "-20", True),
    ],
)
def test_is_active(threshold: Threshold, usage: str, balance: str, active: bool) -> None:
    assert is_active(threshold, snap(usage, balance)) is active


def test_percentage_is_relative_to_total_available_grant_amount() -> None:
    t = Threshold(D("50"), UP)
    assert is_active(t, snap("250", "250", total="500")) is False  # 50 % of 500 = 250
    assert is_active(t, snap("250.01", "249.99", total="500")) is True


def test_no_threshold_is_evaluated_when_total_available_is_zero() -> None:
    thresholds = [Threshold(D("0"), UV), Threshold(D("0"), BV), Threshold(D("10"), UP)]
    assert most_advanced(thresholds, snap("5", "-5", total="0")) == {}


def test_most_advanced_per_kind() -> None:
    thresholds = [
        Threshold(D("50"), UP),  # 50
        Threshold(D("70"), UV),  # 70
        Threshold(D("90"), UP),  # 90: not active at usage 85
        Threshold(D("40"), BV),
        Threshold(D("20"), BV),
        Threshold(D("10"), BV),  # not active at balance 15
    ]
    picks = most_advanced(thresholds, snap("85", "15"))
    assert picks == {Kind.USAGE: Threshold(D("70"), UV), Kind.BALANCE: Threshold(D("20"), BV)}


def test_mixed_usage_types_compare_by_the_usage_they_stand_for() -> None:
    # 60 % of 200 = 120 beats the absolute 100.
    thresholds = [Threshold(D("100"), UV), Threshold(D("60"), UP)]
    assert most_advanced(thresholds, snap("130", "70", total="200")) == {Kind.USAGE: Threshold(D("60"), UP)}
    # Below 120 only the absolute one is active.
    assert most_advanced(thresholds, snap("110", "90", total="200")) == {Kind.USAGE: Threshold(D("100"), UV)}


def test_nothing_active_gives_no_pick() -> None:
    assert most_advanced([Threshold(D("80"), UP), Threshold(D("5"), BV)], snap("10", "90")) == {}
