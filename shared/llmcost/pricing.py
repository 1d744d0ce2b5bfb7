"""The cost math of LLM usage, pure (no I/O). Amounts are Decimal, instants aware UTC.

Rules:

- Per-unit price of a token type. `input`/`request` -> input, `output`/`response` -> output,
  `cache_read` and `cache_write` -> their own price (no price: the row has no cost), `reasoning` ->
  the reasoning price, or the output price when the model has none (providers bill reasoning
  tokens as output tokens unless they price them apart).
- Effective price at instant t. An override (source manual) whose [effective_from, effective_to)
  holds t beats every system price; otherwise the system version whose window holds t. None when
  neither exists (the model has no price at t).
- Splitting. A window's usage is priced piecewise: the window is cut at every effective_from /
  effective_to of the model's versions and overrides that falls strictly inside it, each piece is
  priced at the price effective at the piece's start, and the pieces' costs are added. Usage is
  kept per minute and every price boundary is a whole minute, so the split is exact.
- Cost = usage x per-unit price, exact (no rounding: the result carries the price's precision),
  and sums of costs are exact too.
  A manual unit cost is a fixed per-unit amount with no effective dating.
- Refresh (`plan_refresh`). The catalog's timeline of a model is appended to the stored system
  versions, never rewriting them: a catalog price that differs from the stored one becomes a new
  version starting at max(its catalog start, now) - so a change the catalog back-dates applies
  from the refresh on, and past costs never move - and the version before it is closed at that
  instant. A model stored for the first time takes the catalog's whole history.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

from shared.features.models import TokenType
from shared.llmcost.models import PriceVersion, TokenPrices


def unit_price(prices: TokenPrices, token_type: TokenType) -> Decimal | None:
    """The per-token price of one token type; None when the model does not price it."""
    kind = token_type.canonical
    if kind == TokenType.INPUT:
        return prices.input
    if kind == TokenType.OUTPUT:
        return prices.output
    if kind == TokenType.CACHE_READ:
        return prices.cache_read
    if kind == TokenType.CACHE_WRITE:
        return prices.cache_write
    return prices.reasoning if prices.reasoning is not None else prices.output


def effective(
    system: Sequence[PriceVersion], overrides: Sequence[PriceVersion], t: datetime
) -> PriceVersion | None:
    """The price in effect at t: an override holding t first, else the system version holding t."""
    for version in (*overrides, *system):
        if version.covers(t):
            return version
    return None


def boundaries(versions: Iterable[PriceVersion], start: datetime, end: datetime) -> list[datetime]:
    """Every effective_from / effective_to strictly inside (start, end), sorted, each once."""
    cuts = set()
    for v in versions:
        for t in (v.effective_from, v.effective_to):
            if t is not None and start < t < end:
                cuts.add(t)
    return sorted(cuts)


def pieces(start: datetime, end: datetime, cuts: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at `cuts` (sorted, inside the window) into consecutive half-open pieces."""
    edges = [start, *cuts, end]
    return list(itertools.pairwise(edges))


# Wide enough that usage (38 digits at most, DynamoDB's limit) x a price is never rounded.
EXACT = Context(prec=80)


def cost(usage: Decimal, per_unit: Decimal) -> Decimal:
    return EXACT.multiply(usage, per_unit)


def add(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.add(a, b)


@dataclass(frozen=True)
class NewVersion:
    effective_from: datetime
    effective_to: datetime | None
    pricing: TokenPrices


@dataclass(frozen=True)
class RefreshPlan:
    """Close `close` at the first new version's start (if any) and write `new` (oldest first)."""

    close: PriceVersion | None
    new: tuple[NewVersion, ...]


def plan_refresh(
    stored: Sequence[PriceVersion], timeline: Sequence[tuple[datetime, TokenPrices]], now: datetime
) -> RefreshPlan:
    """What to append so the stored timeline follows the catalog from `now` on (see the rules)."""
    if not stored:
        return RefreshPlan(None, _chain(list(timeline)))
    last = max(stored, key=lambda v: v.effective_from)
    current = last.pricing
    wanted: list[tuple[datetime, TokenPrices]] = []
    for i, (start, prices) in enumerate(timeline):
        nxt = timeline[i + 1][0] if i + 1 < len(timeline) else None
        if nxt is not None and nxt <= now:
            continue  # wholly in the past: history is never rewritten
        begin = max(start, now)
        if begin < last.effective_from or prices.normalized() == current.normalized():
            continue  # a stored future version is kept as is; an unchanged price needs nothing
        wanted.append((begin, prices))
        current = prices
    return RefreshPlan(last if wanted else None, _chain(wanted))


def _chain(starts: list[tuple[datetime, TokenPrices]]) -> tuple[NewVersion, ...]:
    """Consecutive versions: each ends where the next begins, the last stays open."""
    if not starts:
        return ()
    ends = [s for s, _ in starts[1:]] + [None]
    return tuple(NewVersion(s, e, p) for (s, p), e in zip(starts, ends, strict=True))
