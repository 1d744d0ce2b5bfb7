"""The gathering invoice's bookkeeping, pure: reconcile pending lines with the billables, pick what a
collection takes (splitting usage mid-period), record snapshots, make late-usage lines.

Each sync key has one `GatheringEntry`: its pending line (if any) and how far its service period has
been billed (`billed_through`, and `billed`: the cumulative metered quantity billed). So a billable
that comes back after it was invoiced is recognised and skipped (engine-rules §2.8: immutable
invoices are never rewritten), a remainder continues where the last part stopped, and late usage is
measured against what was billed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from shared.catalog.models import PriceType
from shared.core.timeutil import floor_minute
from shared.invoices.billables import Billable
from shared.invoices.models import ZERO, GatheringEntry, Line
from shared.rating.models import Period

# Late usage is looked for in periods that ended within this window: the events' 32-day dedupe window
# (README "Limits"), beyond which a resent event could not be told from a new one anyway.
LATE_WINDOW = timedelta(days=32)
LATE_MARK = "/late["
# When, after a billed usage period ends, the scheduled run looks for its late usage (any other sync
# of the customer looks too): often at first, when late events mostly arrive, then weekly, and in the
# window's last hour (an hourly run falls in it). Usage written late is not signalled per customer, so
# it is looked for on this schedule rather than on every run (the daily full sweep also looks).
LATE_CHECKS = (
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=21),
    timedelta(days=28),
    LATE_WINDOW - timedelta(hours=1),
)


def late_key(origin_key: str, billed: Decimal) -> str:
    return f"{origin_key}{LATE_MARK}{billed}]"


def origin_key(line: Line) -> str:
    return line.key.split(LATE_MARK)[0] if line.late else line.key


def _desired(entry: GatheringEntry | None, b: Billable, new_id: Callable[[], str]) -> Line | None:
    """The pending line a billable asks for, given what of it was billed already."""
    start = b.service_period.start
    pre = ZERO
    if entry is not None and entry.billed_through is not None:
        if not b.price.usage_based:
            return None  # a flat fee is billed whole, once
        start = max(start, entry.billed_through)
        pre = entry.billed or ZERO
    if start >= b.service_period.end:
        return None  # billed to its end (or an empty period)
    existing = entry.line if entry is not None else None
    line = Line(
        id=existing.id if existing is not None else new_id(),
        key=b.key,
        billable=b,
        period=Period(start, b.service_period.end),
        invoice_at=b.invoice_at,
        pre_line_quantity=pre,
    )
    return line


def reconcile(
    entries: dict[str, GatheringEntry], billables: list[Billable], new_id: Callable[[], str]
) -> tuple[list[GatheringEntry], list[str]]:
    """What to write so the pending lines match the billables: (changed entries, removed keys).
    Nothing when they already match (a re-run writes nothing)."""
    changed: list[GatheringEntry] = []
    removed: list[str] = []
    keys = set()
    for b in billables:
        keys.add(b.key)
        entry = entries.get(b.key)
        desired = _desired(entry, b, new_id)
        if entry is None:
            if desired is not None:
                changed.append(GatheringEntry(b.key, line=desired))
            continue
        if entry.line != desired:
            changed.append(replace(entry, line=desired))
    for key, entry in entries.items():
        if key in keys or entry.line is None or entry.line.late:
            continue
        if entry.billed_through is None and not entry.invoices:
            removed.append(key)  # never billed: nothing to remember
        else:
            changed.append(replace(entry, line=None))
    return changed, removed


@dataclass(frozen=True)
class Pick:
    """One line a collection takes, and the entry as it is left in gathering."""

    line: Line
    entry: GatheringEntry


def collect(
    entries: dict[str, GatheringEntry],
    now: datetime,
    invoice_id: str,
    new_id: Callable[[], str],
    *,
    force: bool = False,
    progressive: bool = True,
    limit: int = 40,
) -> list[Pick]:
    """The pending lines due at `now` (`invoice_at <= now`). With `force` (invoice now), also the
    usage so far of periods in progress: with progressive billing a usage line is split at `now`
    (the remainder stays pending). At most `limit` lines (one transaction): the rest wait."""
    cut = floor_minute(now)
    picks: list[Pick] = []
    pending = sorted(
        (e for e in entries.values() if e.line is not None and e.awaiting is None),
        key=lambda e: (e.line.invoice_at if e.line else now, e.key),
    )
    for entry in pending:
        line = entry.line
        assert line is not None
        taken: Line | None = None
        rest: Line | None = None
        if line.invoice_at <= now:
            taken = line
        elif (
            force
            and progressive
            and line.billable.price.usage_based
            and line.billable.price.type is not PriceType.VOLUME
            and line.period.start < cut < line.period.end
        ):
            taken = replace(line, id=new_id(), period=Period(line.period.start, cut), invoice_at=now)
            rest = replace(line, period=Period(cut, line.period.end))
        if taken is None:
            continue
        left = replace(
            entry,
            line=rest,
            billable=line.billable,
            billed_through=None
            if line.late
            else max(taken.period.end, entry.billed_through or taken.period.end),
            invoices=[*entry.invoices, invoice_id],
            awaiting=invoice_id if line.billable.price.usage_based and not line.late else None,
            late_checkable=False,
            service_end=line.service_period.end,
            feature_key=line.billable.feature_key,
        )
        picks.append(Pick(taken, left))
        if len(picks) >= limit:
            break
    return picks


def snapshotted(entry: GatheringEntry, line: Line, cumulative: Decimal, invoice_id: str) -> GatheringEntry:
    """The entry once `line` (collected by `invoice_id`) measured `cumulative` usage from the service
    period's start to its end: that is now billed; a remainder continues from there."""
    rest = entry.line
    if rest is not None and not rest.late:
        rest = replace(rest, pre_line_quantity=cumulative)
    whole = entry.billed_through is not None and entry.billed_through >= line.service_period.end
    price = line.billable.price
    return replace(
        entry,
        line=rest,
        billed=cumulative,
        awaiting=None if entry.awaiting == invoice_id else entry.awaiting,
        late_checkable=whole and price.usage_based and price.type is not PriceType.VOLUME,
    )


def late_candidates(entries: dict[str, GatheringEntry], now: datetime) -> list[GatheringEntry]:
    """Entries whose whole usage period was billed and ended within the late window before `now`."""
    return [
        e
        for e in entries.values()
        if e.late_checkable
        and e.awaiting is None
        and e.billable is not None
        and e.service_end is not None
        and e.feature_key is not None
        and e.service_end <= now < e.service_end + LATE_WINDOW
    ]


def late_line(
    entry: GatheringEntry, measured: Decimal, now: datetime, new_id: Callable[[], str]
) -> Line | None:
    """A line for the usage of the entry's period that arrived after it was billed (None: none did)."""
    billed = entry.billed or ZERO
    if entry.billable is None or measured <= billed:
        return None
    b = entry.billable
    return Line(
        id=new_id(),
        key=late_key(entry.key, billed),
        billable=b,
        period=b.service_period,
        invoice_at=now,
        late=True,
        pre_line_quantity=billed,
    )


def restored(entry: GatheringEntry | None, line: Line, invoice_id: str) -> GatheringEntry:
    """The entry once the draft `invoice_id` holding `line` is deleted: the line is pending again
    (merged with a remainder split off it) and the billing progress goes back to before it."""
    pending = replace(line, quantity=None, rated=None, credits=ZERO)
    base = entry or GatheringEntry(line.key)
    rest = base.line
    if rest is not None and not rest.late and rest.period.start == line.period.end:
        pending = replace(
            rest, period=Period(line.period.start, rest.period.end), pre_line_quantity=line.pre_line_quantity
        )
    first = line.period.start <= line.service_period.start
    return replace(
        base,
        line=pending,
        billed_through=None if first else line.period.start,
        billed=None if first else line.pre_line_quantity,
        invoices=[i for i in base.invoices if i != invoice_id],
        awaiting=None if base.awaiting == invoice_id else base.awaiting,
        late_checkable=False,
    )


def next_invoice_at(entries: dict[str, GatheringEntry]) -> datetime | None:
    times = [e.line.invoice_at for e in entries.values() if e.line is not None and e.awaiting is None]
    return min(times) if times else None


def next_late_check(entries: dict[str, GatheringEntry], now: datetime) -> datetime | None:
    """The next scheduled late-usage check (`LATE_CHECKS`) strictly after `now` of any entry that
    `late_candidates` will offer then (None: no period left to look at)."""
    times = []
    for e in entries.values():
        if not (e.late_checkable and e.awaiting is None and e.billable is not None and e.feature_key):
            continue
        if e.service_end is None:
            continue
        at = next((e.service_end + d for d in LATE_CHECKS if e.service_end + d > now), None)
        if at is not None:
            times.append(at)
    return min(times, default=None)


def next_due(entries: dict[str, GatheringEntry], now: datetime) -> datetime | None:
    """When the scheduled run must come back to this gathering invoice: its first due line, or its
    next late-usage check, whichever is first (the head's `INVDUE` entry)."""
    times = [t for t in (next_invoice_at(entries), next_late_check(entries, now)) if t is not None]
    return min(times, default=None)
