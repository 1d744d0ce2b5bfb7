"""Balance threshold evaluation (engine rules §2.10), pure and exact (Decimal).

Active when:
- `usage_value`:      value < usage
- `usage_percentage`: total_available_grant_amount x value / 100 < usage
- `balance_value`:    value > balance, or value = 0 and balance <= 0
Nothing is evaluated when the total available grant amount is 0 (percentages are meaningless and
every usage threshold would fire on the first unit).

Among the active thresholds the most advanced one per kind is kept: the usage kind (usage_value
and usage_percentage, compared by the usage amount they stand for) keeps the highest, the balance
kind the lowest balance value. The caller emits one event per kind whose pick differs from the
last one emitted for (rule, entitlement, feature, usage period, kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from shared.notifications.models import Threshold, ThresholdType

HUNDRED = Decimal(100)


class Kind(StrEnum):
    USAGE = "usage"
    BALANCE = "balance"


@dataclass(frozen=True)
class Snapshot:
    usage: Decimal
    balance: Decimal
    total_available: Decimal


def kind_of(threshold: Threshold) -> Kind:
    return Kind.BALANCE if threshold.type is ThresholdType.BALANCE_VALUE else Kind.USAGE


def usage_amount(threshold: Threshold, total_available: Decimal) -> Decimal:
    if threshold.type is ThresholdType.USAGE_PERCENTAGE:
        return total_available * threshold.value / HUNDRED
    return threshold.value


def is_active(threshold: Threshold, snap: Snapshot) -> bool:
    if threshold.type is ThresholdType.BALANCE_VALUE:
        if threshold.value == 0:
            return snap.balance <= 0
        return threshold.value > snap.balance
    return usage_amount(threshold, snap.total_available) < snap.usage


def most_advanced(thresholds: list[Threshold], snap: Snapshot) -> dict[Kind, Threshold]:
    """Kind -> the most advanced active threshold; empty when the total available amount is 0."""
    if snap.total_available == 0:
        return {}
    picks: dict[Kind, Threshold] = {}
    for t in thresholds:
        if not is_active(t, snap):
            continue
        kind = kind_of(t)
        best = picks.get(kind)
        if best is None or _further(t, best, kind, snap.total_available):
            picks[kind] = t
    return picks


def _further(candidate: Threshold, best: Threshold, kind: Kind, total: Decimal) -> bool:
    if kind is Kind.BALANCE:
        return candidate.value < best.value
    a, b = usage_amount(candidate, total), usage_amount(best, total)
    # Equal amounts (e.g. 50 and 50 % of 100): keep the first, so the pick is stable.
    return a > b
