"""Credit domain objects (product.md §13; contract `BillingCreditGrant`, `BillingCreditTransaction`).

A grant is a block of credits in one currency for one customer; what the ledger draws from. Its
settlement status only tracks the payment of a purchased grant: the contract's one availability
policy, `on_creation`, makes credits usable from `effective_at` whether or not they are paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

DEFAULT_PRIORITY = 10  # product.md §24: 1-1000, default 10, lower first


class FundingMethod(StrEnum):
    NONE = "none"  # promotional: nothing to pay
    INVOICE = "invoice"
    EXTERNAL = "external"  # paid outside; the settlement endpoint reports its payment


class SettlementStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    SETTLED = "settled"


# A payment moves forward only: pending -> authorized -> settled (pending -> settled directly too).
SETTLEMENT_ORDER = (SettlementStatus.PENDING, SettlementStatus.AUTHORIZED, SettlementStatus.SETTLED)


class GrantStatus(StrEnum):
    PENDING = "pending"  # effective_at is in the future
    ACTIVE = "active"
    EXPIRED = "expired"
    VOIDED = "voided"


class TransactionType(StrEnum):
    FUNDED = "funded"
    CONSUMED = "consumed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Purchase:
    currency: str
    per_unit_cost_basis: Decimal
    amount: Decimal  # per_unit_cost_basis x credit amount, rounded to the purchase currency
    settlement_status: SettlementStatus = SettlementStatus.PENDING
    availability_policy: str = "on_creation"


@dataclass(frozen=True)
class TaxConfig:
    behavior: str | None = None
    tax_code_id: str | None = None


@dataclass(frozen=True)
class CreditGrant:
    id: str
    customer_id: str
    name: str
    funding_method: FundingMethod
    currency: str
    amount: Decimal
    priority: int
    effective_at: datetime
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    purchase: Purchase | None = None
    tax_config: TaxConfig | None = None
    features: tuple[str, ...] = ()  # empty: usable for any charge
    key: str | None = None
    voided_at: datetime | None = None
    rev: int = 0  # every update is conditional on it

    def status(self, now: datetime) -> GrantStatus:
        if self.voided_at is not None and self.voided_at <= now:
            return GrantStatus.VOIDED
        if self.expires_at is not None and self.expires_at <= now:
            return GrantStatus.EXPIRED
        if self.effective_at > now:
            return GrantStatus.PENDING
        return GrantStatus.ACTIVE


@dataclass(frozen=True)
class Movement:
    """A stored ledger entry other than a grant: a consumption (an invoice's `apply`, a negative
    adjustment) drawing from blocks, or a positive adjustment, which is itself a block."""

    id: str
    seq: int
    currency: str
    name: str
    booked_at: datetime
    created_at: datetime
    amount: Decimal  # signed: > 0 adds credits, < 0 consumes them
    parts: tuple[tuple[str, str, Decimal], ...] = ()  # consumption: (transaction id, block id, drawn)
    description: str | None = None
    labels: dict[str, str] | None = field(default=None)
