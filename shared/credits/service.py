"""Credit use cases: grants, balances, transactions, adjustments, and `apply`, the invoice's one call.

Typed inputs in (`requests`), domain objects out, domain errors raised (no HTTP). Balances and
transactions are the pure `ledger` over the customer's stored grants and movements, read in one
consistent Query. Every write that changes balances is one DynamoDB transaction conditional on the
ledger's `seq` (see `repository`), so concurrent writers never spend the same credits twice: the
loser re-reads and retries.

`apply(customer_id, currency, amount, at, idempotency_key)` consumes credits for an invoice exactly
once: the consumption and a claim keyed by the idempotency key are written in the same transaction,
so a re-run after a crash (before the write: nothing happened; after it: the claim answers) or a
concurrent duplicate returns the same applied amount and consumes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from shared.core import durations
from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.ids import new_id
from shared.core.listing import Listed
from shared.core.timeutil import Clock
from shared.credits import ledger
from shared.credits.models import (
    DEFAULT_PRIORITY,
    SETTLEMENT_ORDER,
    CreditGrant,
    FundingMethod,
    Movement,
    Purchase,
    TaxConfig,
)
from shared.credits.repository import AppliedClaim, CreditRepository, LedgerConflict, LedgerState
from shared.credits.requests import (
    BalanceQuery,
    CreateAdjustmentRequest,
    CreateGrantRequest,
    GrantsQuery,
    SettlementRequest,
    TransactionsQuery,
)
from shared.rating.money import currency_precision, round_amount

# Retries of a write that lost the ledger race to a concurrent one (each retry re-reads).
_ATTEMPTS = 8
# Part of a DynamoDB partition key (2,048 bytes at most, with the customer id and a prefix).
MAX_IDEMPOTENCY_KEY = 512
Step = Callable[[str], None]


@dataclass(frozen=True)
class Balance:
    currency: str
    settled: Decimal
    pending: Decimal
    live: Decimal


@dataclass(frozen=True)
class TransactionsPage:
    items: list[ledger.Transaction]
    next_after: str | None
    previous_before: str | None


def _blocks(state: LedgerState) -> list[ledger.Block]:
    """Grants and positive adjustments as burn-down blocks, in ledger order."""
    blocks = [
        ledger.Block(
            g.id,
            g.currency,
            g.amount,
            g.priority,
            g.effective_at,
            state.orders[g.id],
            name=g.name,
            expires_at=g.expires_at,
            features=frozenset(g.features),
            created_at=g.created_at,
        )
        for g in state.grants
    ]
    blocks += [
        ledger.Block(
            m.id, m.currency, m.amount, DEFAULT_PRIORITY, m.booked_at, m.seq, m.name, created_at=m.created_at
        )
        for m in state.movements
        if m.amount > 0
    ]
    return blocks


def _draws(state: LedgerState) -> list[ledger.Draw]:
    return [
        ledger.Draw(part_id, block_id, drawn, m.booked_at, m.seq, m.name, m.created_at)
        for m in state.movements
        for part_id, block_id, drawn in m.parts
    ]


class CreditService:
    def __init__(
        self,
        repo: CreditRepository,
        customer_exists: Callable[[str], bool],
        tax_code_exists: Callable[[str], bool],
        clock: Clock | None = None,
    ) -> None:
        self.repo = repo
        self.customer_exists = customer_exists
        self.tax_code_exists = tax_code_exists
        self.clock = clock or Clock()

    def _customer(self, customer_id: str) -> None:
        if not self.customer_exists(customer_id):
            raise NotFound(f"Customer [{customer_id}] not found")

    # -- grants ------------------------------------------------------------------------------------
    def create_grant(self, customer_id: str, req: CreateGrantRequest) -> CreditGrant:
        self._customer(customer_id)
        if (
            req.tax_config
            and req.tax_config.tax_code
            and not self.tax_code_exists(req.tax_config.tax_code.id)
        ):
            raise InvalidInput.field(
                "tax_config.tax_code.id", f"tax code [{req.tax_config.tax_code.id}] not found"
            )
        now = self.clock.now()
        effective_at = req.effective_at or now
        expires_at = None
        if req.expires_after is not None:
            try:
                expires_at = durations.step(effective_at, req.expires_after, 1)
            except (OverflowError, ValueError):
                raise InvalidInput.field("expires_after", "puts the expiry beyond the year 9999") from None
        amount = Decimal(req.amount)
        purchase = None
        if req.purchase is not None:
            basis = Decimal(req.purchase.per_unit_cost_basis)
            precision = currency_precision(req.purchase.currency)
            purchase = Purchase(req.purchase.currency, basis, round_amount(basis * amount, precision))
        tax = None
        if req.tax_config is not None:
            tax = TaxConfig(
                req.tax_config.behavior, req.tax_config.tax_code.id if req.tax_config.tax_code else None
            )
        grant = CreditGrant(
            id=new_id(),
            customer_id=customer_id,
            name=req.name,
            description=req.description,
            labels=req.labels,
            funding_method=req.funding_method,
            currency=req.currency,
            amount=amount,
            priority=req.priority,
            effective_at=effective_at,
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
            purchase=purchase,
            tax_config=tax,
            features=tuple(dict.fromkeys(req.filters.features or ())) if req.filters else (),
            key=req.key,
        )
        for _ in range(_ATTEMPTS):
            if req.key is not None and (owner := self.repo.key_owner(customer_id, req.key)) is not None:
                raise Conflict(
                    f"A credit grant with key [{req.key}] already exists", conflicting_entity_id=owner
                )
            try:
                self.repo.add_grant(grant, self.repo.ledger(customer_id).seq)
                return grant
            except LedgerConflict:
                continue  # the ledger moved, or the key was just taken: the next round says which
        raise Conflict(f"The credits of customer [{customer_id}] changed concurrently; retry")

    def get_grant(self, customer_id: str, grant_id: str) -> CreditGrant:
        self._customer(customer_id)
        found = self.repo.get_grant(customer_id, grant_id)
        if found is None:
            raise NotFound(f"Credit grant [{grant_id}] not found")
        return found[0]

    def list_grants(self, customer_id: str, query: GrantsQuery) -> Listed[CreditGrant]:
        self._customer(customer_id)
        now = self.clock.now()
        grants = [
            g
            for g in self.repo.ledger(customer_id).grants
            if (query.status is None or g.status(now) is query.status)
            and (query.currency is None or g.currency == query.currency)
            and (query.key is None or (g.key is not None and query.key.matches(g.key)))
        ]
        return Listed.of(query.page, grants)

    def settle_externally(self, customer_id: str, grant_id: str, req: SettlementRequest) -> CreditGrant:
        """An externally funded grant's payment moved on (pending -> authorized -> settled)."""
        self._customer(customer_id)
        found = self.repo.get_grant(customer_id, grant_id)
        if found is None:
            raise NotFound(f"Credit grant [{grant_id}] not found")
        grant, seq = found
        if grant.funding_method is not FundingMethod.EXTERNAL or grant.purchase is None:
            raise InvalidInput.field(
                "creditGrantId",
                f"credit grant [{grant_id}] is funded by {grant.funding_method.value}, not externally",
                source="path",
            )
        current = grant.purchase.settlement_status
        if current is req.status:
            return grant  # a repeated report is a no-op (safe to retry)
        if SETTLEMENT_ORDER.index(req.status) < SETTLEMENT_ORDER.index(current):
            raise InvalidInput.field(
                "status",
                f"the grant's payment is already {current.value}; it can't go back to {req.status.value}",
            )
        now = self.clock.now()
        updated = replace(
            grant,
            purchase=replace(grant.purchase, settlement_status=req.status),
            updated_at=now,
            rev=grant.rev + 1,
        )
        try:
            self.repo.update_grant(updated, seq)
        except LedgerConflict:
            raise Conflict(f"Credit grant [{grant_id}] changed concurrently; retry") from None
        return updated

    # -- balances and transactions -----------------------------------------------------------------
    def balances(self, customer_id: str, query: BalanceQuery) -> tuple[datetime, list[Balance]]:
        self._customer(customer_id)
        now = self.clock.now()
        at = query.timestamp or now
        state = self.repo.ledger(customer_id)
        blocks = _blocks(state)
        if query.feature_key is not None:
            flt = query.feature_key
            blocks = [b for b in blocks if not b.features or any(flt.matches(f) for f in b.features)]
        draws = _draws(state)
        currencies = sorted({b.currency for b in _blocks(state)})
        out = []
        for currency in currencies:
            if query.currency is not None and not query.currency.matches(currency):
                continue
            settled = ledger.balance_at(blocks, draws, currency, at)
            # No charge is in flight between an invoice's rating and its `apply` (it is one call),
            # so the live balance is the settled one.
            out.append(Balance(currency, settled, ledger.pending_at(blocks, currency, at), settled))
        return now, out

    def transactions(self, customer_id: str, query: TransactionsQuery) -> TransactionsPage:
        """Newest first; `after` continues towards older ones, `before` back towards newer ones."""
        self._customer(customer_id)
        state = self.repo.ledger(customer_id)
        blocks = _blocks(state)
        features = {b.id: b.features for b in blocks}
        txs = ledger.transactions(blocks, _draws(state), self.clock.now())
        txs.reverse()
        flt = query.feature_key
        txs = [
            t
            for t in txs
            if (query.type is None or t.type is query.type)
            and (query.currency is None or t.currency == query.currency)
            and (flt is None or not features[t.block_id] or any(flt.matches(f) for f in features[t.block_id]))
        ]
        ids = [t.id for t in txs]
        cursor = query.after or query.before
        if cursor is not None and cursor not in ids:
            name = "page[after]" if query.after else "page[before]"
            raise InvalidInput.field(name, "is not a transaction of this listing", source="query")
        if query.before is not None:
            end = ids.index(query.before)
            start = max(0, end - query.size)
        else:
            start = ids.index(query.after) + 1 if query.after is not None else 0
            end = start + query.size
        page = txs[start:end]
        return TransactionsPage(
            page,
            page[-1].id if end < len(txs) and page else None,
            page[0].id if start > 0 and page else None,
        )

    # -- consumption -------------------------------------------------------------------------------
    def adjust(self, customer_id: str, req: CreateAdjustmentRequest) -> Movement:
        """A manual correction: a positive amount adds a block (default priority, no expiry); a
        negative one consumes, by burn-down, at most what the balance has (else 400, nothing written)."""
        self._customer(customer_id)
        amount = Decimal(req.amount)
        for _ in range(_ATTEMPTS):
            state = self.repo.ledger(customer_id)
            now = self.clock.now()
            parts: tuple[tuple[str, str, Decimal], ...] = ()
            if amount < 0:
                drawn = ledger.burn(_blocks(state), _draws(state), req.currency, -amount, now)
                if sum((a for _, a in drawn), Decimal(0)) < -amount:
                    have = ledger.available(_blocks(state), _draws(state), req.currency, now)
                    raise InvalidInput.field(
                        "amount", f"exceeds the available {req.currency} balance of {have}"
                    )
                parts = tuple((new_id(), bid, a) for bid, a in drawn)
            move = Movement(
                new_id(),
                state.seq + 1,
                req.currency,
                req.name,
                now,
                now,
                amount,
                parts,
                req.description,
                req.labels,
            )
            try:
                self.repo.add_movement(customer_id, move, state.seq)
                return move
            except LedgerConflict:
                continue
        raise Conflict(f"The credits of customer [{customer_id}] changed concurrently; retry")

    def apply(
        self,
        customer_id: str,
        currency: str,
        amount: Decimal,
        at: datetime,
        idempotency_key: str,
        *,
        feature_key: str | None = None,
        name: str = "Invoice",
        step: Step | None = None,
    ) -> Decimal:
        """Consume up to `amount` of the customer's `currency` credits usable at `at` (for a charge of
        `feature_key`; None: unrestricted credits only), by burn-down, exactly once per
        `idempotency_key`. Returns the amount applied (0 <= applied <= amount); the caller invoices
        `amount - applied`. A repeated key returns the first answer; the same key with another
        currency, amount or feature is a Conflict. The customer is not looked up (the invoice has it):
        one with no credits gets 0. `step` is the fault-injection seam of the tests."""
        step = step or (lambda _name: None)
        if amount < 0:
            raise ValueError("amount must not be negative")
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY} characters")
        ledger.check_amount(amount, currency)
        for _ in range(_ATTEMPTS):
            claim = self.repo.applied(customer_id, idempotency_key)
            if claim is not None:
                if (claim.currency, claim.requested, claim.feature_key) != (currency, amount, feature_key):
                    raise Conflict(
                        f"Idempotency key [{idempotency_key}] was used for another credit application"
                    )
                return claim.applied
            state = self.repo.ledger(customer_id)
            step("read")
            drawn = ledger.burn(_blocks(state), _draws(state), currency, amount, at, feature_key)
            applied = sum((a for _, a in drawn), Decimal(0))
            move_id = new_id() if drawn else None
            record = AppliedClaim(currency, amount, applied, move_id, feature_key)
            try:
                if move_id is None:
                    self.repo.record_claim_only(customer_id, idempotency_key, record)
                else:
                    parts = tuple((new_id(), bid, a) for bid, a in drawn)
                    move = Movement(
                        move_id, state.seq + 1, currency, name, at, self.clock.now(), -applied, parts
                    )
                    self.repo.add_movement(customer_id, move, state.seq, (idempotency_key, record))
            except LedgerConflict:
                continue  # a concurrent write (or this very key, applied concurrently): re-read
            step("write")
            return applied
        raise Conflict(f"The credits of customer [{customer_id}] changed concurrently; retry")
