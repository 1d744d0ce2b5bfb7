"""The credit ledger against product.md §13 and §25 (acceptance candidates 19-28).

Every expected number is worked by hand beside it. Time is in days from T0 (`at(d)`); blocks are
numbered in ledger order by `seq`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.errors import InvalidInput
from shared.credits.ledger import (
    Block,
    Draw,
    available,
    balance_at,
    burn,
    check_amount,
    expired_amount,
    expiry_id,
    left,
    pending_at,
    transactions,
)
from shared.credits.models import TransactionType

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def at(day: int) -> datetime:
    return T0 + timedelta(days=day)


def block(
    bid: str,
    amount: str,
    priority: int = 10,
    expires: int | None = None,
    seq: int = 0,
    effective: int = 0,
    currency: str = "USD",
    features: tuple[str, ...] = (),
) -> Block:
    return Block(
        bid,
        currency,
        D(amount),
        priority,
        at(effective),
        seq,
        name=bid,
        expires_at=at(expires) if expires is not None else None,
        features=frozenset(features),
    )


def draws_of(plan: list[tuple[str, Decimal]], day: int, seq: int = 100) -> list[Draw]:
    return [Draw(f"d{seq}-{i}", bid, amt, at(day), seq) for i, (bid, amt) in enumerate(plan)]


def test_example_a_priority_then_expiry() -> None:
    # A(p1, T10, 100), B(p1, T20, 100), C(p2, never, 100); consume 150 -> A 100 (first: p1, soonest
    # expiry), B 50 (p1, later expiry), C 0 (p2 comes after every p1).
    blocks = [block("C", "100", 2, None, 0), block("B", "100", 1, 20, 1), block("A", "100", 1, 10, 2)]
    assert burn(blocks, [], "USD", D(150), at(1)) == [("A", D(100)), ("B", D(50))]


def test_example_b_charge_90() -> None:
    # A(p1, T10, 50), B(p1, T20, 80), C(p2, never, 100); charge 90 -> A 50, B 40 (90 - 50), C 0.
    blocks = [block("A", "50", 1, 10, 0), block("B", "80", 1, 20, 1), block("C", "100", 2, None, 2)]
    assert burn(blocks, [], "USD", D(90), at(1)) == [("A", D(50)), ("B", D(40))]


def test_same_priority_same_expiry_oldest_first_and_no_expiry_last() -> None:
    # Same priority 10: X expires T5, Y and Z never; Y is older (seq 1) than Z (seq 2).
    # 120 -> X 50, then Y 50 (oldest of the never-expiring), then Z 20 (120 - 50 - 50).
    blocks = [block("Z", "50", seq=2), block("Y", "50", seq=1), block("X", "50", expires=5, seq=3)]
    assert burn(blocks, [], "USD", D(120), at(1)) == [("X", D(50)), ("Y", D(50)), ("Z", D(20))]


def test_shortfall_applies_only_what_is_left() -> None:
    # credit_then_invoice: charge 100, balance 40 -> 40 applied, the invoice keeps 60.
    blocks = [block("A", "40")]
    drawn = burn(blocks, [], "USD", D(100), at(1))
    assert drawn == [("A", D(40))]
    assert D(100) - sum(a for _, a in drawn) == D(60)


def test_a_block_is_never_overdrawn_even_by_backdated_draws() -> None:
    # A 100; 70 drawn at day 5. A consumption backdated to day 2 sees 100 - 70 = 30 left, not 100.
    blocks = [block("A", "100")]
    earlier = draws_of([("A", D(70))], 5)
    assert burn(blocks, earlier, "USD", D(50), at(2)) == [("A", D(30))]
    assert available(blocks, earlier, "USD", at(2)) == D(30)


def test_blocks_not_yet_effective_expired_or_in_another_currency_are_not_drawn() -> None:
    blocks = [
        block("future", "100", effective=5),
        block("gone", "100", expires=1),  # usable over [T0, T1): not at T1
        block("eur", "100", currency="EUR"),
        block("ok", "10"),
    ]
    assert burn(blocks, [], "USD", D(50), at(1)) == [("ok", D(10))]


def test_feature_restrictions() -> None:
    # Charge of input_tokens: unrestricted, [input_tokens], [input_tokens, output_tokens] serve it;
    # [storage] does not. A charge of no feature draws unrestricted credits only.
    blocks = [
        block("any", "1", seq=0),
        block("in", "2", seq=1, features=("input_tokens",)),
        block("both", "4", seq=2, features=("input_tokens", "output_tokens")),
        block("storage", "8", seq=3, features=("storage",)),
    ]
    assert available(blocks, [], "USD", at(1), "input_tokens") == D(7)  # 1 + 2 + 4
    assert available(blocks, [], "USD", at(1), None) == D(1)
    assert burn(blocks, [], "USD", D(100), at(1), "storage") == [("any", D(1)), ("storage", D(8))]


def test_expiry_removes_only_unused_credits() -> None:
    # +100 at T1, -30 at T5, expiry T10 -> expired 100 - 30 = 70; settled T1/T5/T10 = 100/70/0.
    blocks = [block("G", "100", expires=10, effective=1)]
    draws = draws_of([("G", D(30))], 5)
    assert expired_amount(blocks[0], draws) == D(70)
    assert [balance_at(blocks, draws, "USD", at(d)) for d in (1, 5, 9, 10)] == [D(100), D(70), D(70), D(0)]
    # No usage: the whole 100 expires.
    assert expired_amount(blocks[0], []) == D(100)


def test_example_c_same_priority_expiry_reduction() -> None:
    # A(p1, T10, 50), B(p1, T20, 50); consume 30 before T10 -> all from A; at T10 A loses 20, B keeps 50.
    blocks = [block("A", "50", 1, 10, 0), block("B", "50", 1, 20, 1)]
    drawn = burn(blocks, [], "USD", D(30), at(3))
    assert drawn == [("A", D(30))]
    draws = draws_of(drawn, 3)
    assert expired_amount(blocks[0], draws) == D(20)
    assert balance_at(blocks, draws, "USD", at(10)) == D(50)  # 100 - 30 - 20


def test_balance_before_an_expiry_does_not_include_it_and_pending_is_future_grants() -> None:
    blocks = [block("now", "100", expires=10), block("later", "25", effective=7)]
    assert balance_at(blocks, [], "USD", at(6)) == D(100)
    assert pending_at(blocks, "USD", at(6)) == D(25)
    assert balance_at(blocks, [], "USD", at(7)) == D(125)
    assert pending_at(blocks, "USD", at(7)) == D(0)
    assert balance_at(blocks, [], "USD", at(10)) == D(25)  # 125 - 100 expired unused


def test_transactions_story_with_chained_balances() -> None:
    # +100 funded T1, -30 consumed T5, -70 expired T10 -> 100, 70, 0.
    blocks = [block("G", "100", expires=10, effective=1)]
    draws = draws_of([("G", D(30))], 5)
    txs = transactions(blocks, draws, at(30))
    assert [(t.type, t.amount, t.before, t.after) for t in txs] == [
        (TransactionType.FUNDED, D(100), D(0), D(100)),
        (TransactionType.CONSUMED, D(-30), D(100), D(70)),
        (TransactionType.EXPIRED, D(-70), D(70), D(0)),
    ]
    assert txs[2].id == expiry_id(blocks[0])  # stable across reads
    # Before the expiry time, the expiry is not a transaction yet.
    assert [t.type for t in transactions(blocks, draws, at(9))] == [
        TransactionType.FUNDED,
        TransactionType.CONSUMED,
    ]


def test_one_consumed_transaction_per_block_and_balances_per_currency() -> None:
    # USD A 50 (p1), B 80 (p2); EUR E 10. Charge USD 90 at T2 -> A -50, B -40.
    # USD balances: 0 -> 50 -> 130 -> 80 -> 40; EUR keeps its own chain 0 -> 10.
    blocks = [block("A", "50", 1, seq=0), block("B", "80", 2, seq=1), block("E", "10", currency="EUR", seq=2)]
    draws = draws_of(burn(blocks, [], "USD", D(90), at(2)), 2)
    txs = transactions(blocks, draws, at(3))
    assert [(t.block_id, t.amount, t.before, t.after) for t in txs] == [
        ("A", D(50), D(0), D(50)),
        ("B", D(80), D(50), D(130)),
        ("E", D(10), D(0), D(10)),
        ("A", D(-50), D(130), D(80)),
        ("B", D(-40), D(80), D(40)),
    ]


def test_correction_is_a_new_movement() -> None:
    # T1 +100, T2 -40 consumed, T3 +10 correction block -> 100, 60, 70.
    blocks = [block("G", "100", effective=1, seq=0), block("fix", "10", effective=3, seq=2)]
    draws = draws_of([("G", D(40))], 2, seq=1)
    assert [t.after for t in transactions(blocks, draws, at(4))] == [D(100), D(60), D(70)]


@pytest.mark.parametrize(
    ("amount", "currency", "ok"),
    [
        ("1.25", "USD", True),
        ("1.250", "USD", True),  # trailing zeros are still cents
        ("1.255", "USD", False),
        ("100", "JPY", True),
        ("1.5", "JPY", False),
        ("0.125", "KWD", True),  # 3 decimals
        ("1E+3", "USD", True),
    ],
)
def test_amounts_are_exact_to_the_currency(amount: str, currency: str, ok: bool) -> None:
    if ok:
        check_amount(D(amount), currency)
    else:
        with pytest.raises(ValueError, match="decimals"):
            check_amount(D(amount), currency)


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(InvalidInput):
        check_amount(D(1), "ZZZ")
    with pytest.raises(InvalidInput):
        check_amount(D(1), "XAU")  # no minor unit


# -- properties over random ledgers ------------------------------------------------------------------
@st.composite
def ledgers(draw: st.DrawFn) -> tuple[list[Block], list[tuple[Decimal, int, str | None]]]:
    n = draw(st.integers(1, 6))
    blocks = [
        block(
            f"b{i}",
            str(draw(st.integers(1, 10_000)) / D(100)),
            draw(st.integers(1, 3)),
            draw(st.one_of(st.none(), st.integers(1, 20))),
            seq=i,
            effective=draw(st.integers(0, 5)),
            currency=draw(st.sampled_from(["USD", "EUR"])),
            features=tuple(draw(st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True))),
        )
        for i in range(n)
    ]
    charges = draw(
        st.lists(
            st.tuples(
                st.integers(0, 20_000).map(lambda c: c / D(100)),
                st.integers(0, 25),
                st.sampled_from([None, "a", "b"]),
            ),
            max_size=8,
        )
    )
    return blocks, charges


@settings(max_examples=150, derandomize=True, deadline=None)
@given(ledgers())
def test_burn_down_invariants(case: tuple[list[Block], list[tuple[Decimal, int, str | None]]]) -> None:
    blocks, charges = case
    draws: list[Draw] = []
    for n, (amount, day, feature) in enumerate(charges):
        can = available(blocks, draws, "USD", at(day), feature)
        drawn = burn(blocks, draws, "USD", amount, at(day), feature)
        # Exactly what is there, up to the amount asked.
        assert sum((a for _, a in drawn), D(0)) == min(amount, can)
        # In burn order: every usable block before the last one drawn from is empty afterwards.
        draws += [Draw(f"{n}-{i}", b, a, at(day), 100 + n) for i, (b, a) in enumerate(drawn)]
        if drawn:
            usable = sorted(
                (b for b in blocks if b.currency == "USD" and b.usable_at(at(day)) and b.serves(feature)),
                key=Block.burn_key,
            )
            last = [b.id for b in usable].index(drawn[-1][0])
            assert all(left(b, draws) == 0 for b in usable[:last])
    assert all(left(b, draws) >= 0 for b in blocks)  # never overdrawn
    txs = transactions(blocks, draws, at(40))
    for currency in ("USD", "EUR"):
        chain = [t for t in txs if t.currency == currency]
        assert all(t.before + t.amount == t.after for t in chain)
        assert all(a.after == b.before for a, b in pairwise(chain))
        assert (chain[-1].after if chain else D(0)) == balance_at(blocks, draws, currency, at(40))
        assert balance_at(blocks, draws, currency, at(40)) >= 0
