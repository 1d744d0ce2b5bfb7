"""The credit ledger: pure, exact functions over blocks of credits and the draws made from them.

No I/O and no clock: the caller passes every instant. Amounts are Decimal in one currency, exact to
that currency's ISO 4217 precision (`check_amount`); nothing here rounds, so every balance is a sum
of exact amounts. The rules (product.md §13, peers-bar.md §1.9):

- A block is what credits are drawn from: a grant, or a positive adjustment (a block with the
  default priority that never expires). It is usable over [effective_at, expires_at).
- Burn-down. A consumption of `amount` at instant `at` in a currency draws from the blocks usable at
  `at` in that currency (and, for a charge of a feature, the blocks unrestricted or restricted to a
  set containing it; a charge of no feature draws unrestricted blocks only), in the order priority
  ascending, then earliest expiry (no expiry last), then oldest (ledger order). Each block gives
  what it has left, i.e. its amount minus every draw already booked from it, at any time (a draw
  is never undone, so a block is never overdrawn however draws are backdated). What no block covers
  is not drawn: `burn` returns the draws, and their sum is the amount applied.
- Expiry. Only unused credits expire: at `expires_at` a block loses what is left of it. Draws from
  a block are booked before its expiry (it is unusable from then), so what expires is its amount
  minus all its draws, and is never negative.
- Balance at t: the blocks effective at or before t, minus the draws booked at or before t, minus
  the expirations at or before t. A balance read before an expiry does not include it. Pending at
  t: the blocks that become effective after t (granted, booked in the future).
- Transactions: `funded` (+block amount at effective_at), `consumed` (-draw, one per block drawn
  from, at the draw's time), `expired` (-unused at expires_at), in booking order (time, then funded
  before consumed before expired, then ledger order), each with the currency's available balance
  before and after it. The list is a projection: stored entries are never edited, expirations are
  derived, so an expiry needs no scheduled job and cannot be missed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ulid import ULID

from shared.credits.models import TransactionType
from shared.rating.money import currency_precision

ZERO = Decimal(0)


@dataclass(frozen=True)
class Block:
    id: str
    currency: str
    amount: Decimal  # > 0
    priority: int
    effective_at: datetime
    seq: int  # ledger order: oldest first
    name: str = ""
    expires_at: datetime | None = None
    features: frozenset[str] = frozenset()  # empty: any charge
    created_at: datetime | None = None  # when it was written (None: at effective_at)

    def usable_at(self, at: datetime) -> bool:
        return self.effective_at <= at and (self.expires_at is None or at < self.expires_at)

    def serves(self, feature: str | None) -> bool:
        return not self.features or (feature is not None and feature in self.features)

    def burn_key(self) -> tuple[int, int, datetime, int]:
        no_expiry = self.expires_at is None
        return (self.priority, int(no_expiry), self.expires_at or self.effective_at, self.seq)


@dataclass(frozen=True)
class Draw:
    id: str
    block_id: str
    amount: Decimal  # > 0: what was taken from the block
    booked_at: datetime
    seq: int
    name: str = ""
    created_at: datetime | None = None  # when it was written (None: at booked_at)


@dataclass(frozen=True)
class Transaction:
    id: str
    type: TransactionType
    currency: str
    amount: Decimal  # signed
    booked_at: datetime
    name: str
    block_id: str
    before: Decimal
    after: Decimal
    created_at: datetime


def check_amount(amount: Decimal, currency: str) -> None:
    """ValueError unless `amount` is finite and exact to the currency's ISO 4217 minor unit
    (an unknown code raises the InvalidInput of `currency_precision`)."""
    precision = currency_precision(currency)
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -precision:
        raise ValueError(f"must have at most {precision} decimals ({currency})")


def left(block: Block, draws: Iterable[Draw]) -> Decimal:
    """What a block still has to give: its amount minus every draw booked from it."""
    return block.amount - sum((d.amount for d in draws if d.block_id == block.id), ZERO)


def burn_order(blocks: Iterable[Block]) -> list[Block]:
    return sorted(blocks, key=Block.burn_key)


def burn(
    blocks: Sequence[Block],
    draws: Sequence[Draw],
    currency: str,
    amount: Decimal,
    at: datetime,
    feature: str | None = None,
) -> list[tuple[str, Decimal]]:
    """(block id, amount drawn) for a consumption of `amount` at `at`, in burn-down order; the sum
    is min(amount, what the usable blocks have left)."""
    if amount < 0:
        raise ValueError("a consumption must not be negative")
    out: list[tuple[str, Decimal]] = []
    wanted = amount
    for block in burn_order(
        b for b in blocks if b.currency == currency and b.usable_at(at) and b.serves(feature)
    ):
        if wanted <= 0:
            break
        take = min(wanted, left(block, draws))
        if take > 0:
            out.append((block.id, take))
            wanted -= take
    return out


def available(
    blocks: Sequence[Block], draws: Sequence[Draw], currency: str, at: datetime, feature: str | None = None
) -> Decimal:
    """What a consumption at `at` could draw at most."""
    usable = (b for b in blocks if b.currency == currency and b.usable_at(at) and b.serves(feature))
    return sum((max(left(b, draws), ZERO) for b in usable), ZERO)


def expired_amount(block: Block, draws: Sequence[Draw]) -> Decimal:
    """What a block loses at its expiry: its unused credits (0 for a block that never expires)."""
    return max(left(block, draws), ZERO) if block.expires_at is not None else ZERO


def balance_at(blocks: Sequence[Block], draws: Sequence[Draw], currency: str, t: datetime) -> Decimal:
    """The settled balance at t (see the module docstring)."""
    mine = [b for b in blocks if b.currency == currency]
    ids = {b.id for b in mine}
    funded = sum((b.amount for b in mine if b.effective_at <= t), ZERO)
    drawn = sum((d.amount for d in draws if d.block_id in ids and d.booked_at <= t), ZERO)
    lost = sum(
        (expired_amount(b, draws) for b in mine if b.expires_at is not None and b.expires_at <= t), ZERO
    )
    return funded - drawn - lost


def pending_at(blocks: Sequence[Block], currency: str, t: datetime) -> Decimal:
    """Credits granted with an effective time after t."""
    return sum((b.amount for b in blocks if b.currency == currency and b.effective_at > t), ZERO)


def expiry_id(block: Block) -> str:
    """A stable ULID for a block's derived expiry transaction (its time, then a hash of the block)."""
    assert block.expires_at is not None
    millis = int(block.expires_at.timestamp() * 1000).to_bytes(6, "big")
    return str(ULID.from_bytes(millis + hashlib.sha256(block.id.encode()).digest()[:10]))


_RANK = {TransactionType.FUNDED: 0, TransactionType.CONSUMED: 1, TransactionType.EXPIRED: 2}


def transactions(blocks: Sequence[Block], draws: Sequence[Draw], until: datetime) -> list[Transaction]:
    """Every movement booked at or before `until`, oldest first, with running balances per currency."""
    by_id = {b.id: b for b in blocks}
    # (order key, type, block, signed amount, id, name, written at)
    Row = tuple[tuple[datetime, int, int, str], TransactionType, Block, Decimal, str, str, datetime]
    rows: list[Row] = []
    for b in blocks:
        if b.effective_at <= until:
            written = b.created_at or b.effective_at
            rows.append(
                ((b.effective_at, 0, b.seq, b.id), TransactionType.FUNDED, b, b.amount, b.id, b.name, written)
            )
        if b.expires_at is not None and b.expires_at <= until and (lost := expired_amount(b, draws)) > 0:
            key = (b.expires_at, 2, b.seq, b.id)
            rows.append((key, TransactionType.EXPIRED, b, -lost, expiry_id(b), b.name, b.expires_at))
    for d in draws:
        if d.booked_at <= until:
            key = (d.booked_at, 1, d.seq, d.id)
            written = d.created_at or d.booked_at
            rows.append((key, TransactionType.CONSUMED, by_id[d.block_id], -d.amount, d.id, d.name, written))
    rows.sort(key=lambda r: r[0])
    running: dict[str, Decimal] = {}
    out: list[Transaction] = []
    for key, kind, block, amount, tx_id, name, written in rows:
        before = running.get(block.currency, ZERO)
        running[block.currency] = before + amount
        out.append(
            Transaction(
                tx_id, kind, block.currency, amount, key[0], name, block.id, before, before + amount, written
            )
        )
    return out
