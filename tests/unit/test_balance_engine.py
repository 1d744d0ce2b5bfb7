"""The balance engine against the rules of engine-rules §2.4-2.5 (OpenMeter's credit engine).

Written from the rules, not from the code: every expected number is worked out by hand in the
comment next to it. Time is counted in minutes from T0 (`at(m)`); usage comes from in-memory events
keyed by instant, aggregated over [a, b) (sum, distinct count, latest or max). The default usage
period is P1D anchored at T0 and measured from T0, so automatic resets fall at minutes 1440, 2880...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.core import durations
from shared.entitlements.engine import (
    Grant,
    ManualReset,
    Recurrence,
    Terms,
    UsageFn,
    UsageKind,
    balances_at,
    burndown,
    fingerprint,
    period_at,
    snapshot_at,
    value_at,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 1440
D = Decimal


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


# -- usage functions -------------------------------------------------------------------------------
def sums(events: Mapping[int, Decimal | int | str]) -> UsageFn:
    """sum/count: the sum of the values whose minute is in [a, b)."""
    stamped = {at(m): D(v) for m, v in events.items()}

    def fn(a: datetime, b: datetime) -> Decimal:
        return sum((v for t, v in stamped.items() if a <= t < b), D(0))

    return fn


def distinct(events: Mapping[int, str]) -> UsageFn:
    """unique_count: how many distinct values were seen in [a, b)."""

    def fn(a: datetime, b: datetime) -> Decimal:
        return D(len({v for m, v in events.items() if a <= at(m) < b}))

    return fn


def latest(events: Mapping[int, Decimal | int | str]) -> UsageFn:
    """latest: the value of the last event in [a, b) (0 when there is none)."""

    def fn(a: datetime, b: datetime) -> Decimal:
        seen = sorted((m, D(v)) for m, v in events.items() if a <= at(m) < b)
        return seen[-1][1] if seen else D(0)

    return fn


def peak(events: Mapping[int, Decimal | int | str]) -> UsageFn:
    """max: the largest value in [a, b) (0 when there is none)."""

    def fn(a: datetime, b: datetime) -> Decimal:
        return max((D(v) for m, v in events.items() if a <= at(m) < b), default=D(0))

    return fn


# -- builders --------------------------------------------------------------------------------------
def grant(
    gid: str,
    amount: int | str,
    priority: int = 1,
    eff: int = 0,
    created: int | None = None,
    expires: int | None = None,
    voided: int | None = None,
    min_rollover: int | str = 0,
    max_rollover: int | str | None = None,
    recurrence: tuple[str, int] | None = None,
) -> Grant:
    return Grant(
        id=gid,
        amount=D(amount),
        priority=priority,
        effective_at=at(eff),
        created_at=at(eff if created is None else created),
        expires_at=None if expires is None else at(expires),
        voided_at=None if voided is None else at(voided),
        min_rollover=D(min_rollover),
        max_rollover=None if max_rollover is None else D(max_rollover),
        recurrence=None if recurrence is None else Recurrence(recurrence[0], at(recurrence[1])),
    )


def terms(
    kind: UsageKind = UsageKind.ADDITIVE,
    interval: str = "P1D",
    anchor: datetime = T0,
    mus: datetime = T0,
    preserve: bool = False,
    soft: bool = False,
    resets: tuple[ManualReset, ...] = (),
) -> Terms:
    return Terms(
        kind=kind,
        interval=interval,
        anchor=anchor,
        measure_usage_from=mus,
        preserve_overage_at_reset=preserve,
        is_soft_limit=soft,
        resets=resets,
    )


def balances(value) -> dict[str, Decimal]:
    return dict(value.grant_balances)


# -- 1. priority order -----------------------------------------------------------------------------
def test_lower_priority_number_burns_first():
    # a: 50 @ priority 5 (created first, first id); b: 30 @ priority 1 (created later).
    # usage 40 → b (priority 1) burns 30 → 0, a burns the remaining 10 → 40. Balance 40.
    grants = [grant("a", 50, priority=5, created=-10), grant("b", 30, priority=1, created=-5)]
    v = value_at(terms(), grants, sums({10: 40}), at(60))
    assert balances(v) == {"a": D(40), "b": D(0)}
    assert v.balance == D(40)
    assert v.usage == D(40) and v.overage == D(0)


def test_same_priority_soonest_expiry_first_and_no_expiry_last():
    # All priority 1. a: 100 no expiry (created first, first id); b: 20 expires at 600;
    # c: 20 expires at 300. Usage 30 → c (expires soonest) 20 → 0, then b 10 → 10, a untouched.
    grants = [
        grant("a", 100, created=-30),
        grant("b", 20, created=-20, expires=600),
        grant("c", 20, created=-10, expires=300),
    ]
    v = value_at(terms(), grants, sums({10: 30}), at(60))
    assert balances(v) == {"a": D(100), "b": D(10), "c": D(0)}
    assert v.balance == D(110)


@pytest.mark.parametrize("expires", [None, 600])
def test_same_priority_and_expiry_earliest_created_first(expires):
    # Same priority, same expiry (both none / both 600). "b" was created first (minute -10), "a"
    # later (minute -5): creation wins over id. Usage 15 → b 10 → 0, a 5 → 5.
    grants = [
        grant("a", 10, created=-5, expires=expires),
        grant("b", 10, created=-10, expires=expires),
    ]
    v = value_at(terms(), grants, sums({10: 15}), at(60))
    assert balances(v) == {"a": D(5), "b": D(0)}


def test_full_tie_breaks_on_id():
    # Same priority, expiry and creation: id ascending → "a" burns first. Usage 15 → a 0, b 5.
    grants = [grant("b", 10, created=-5), grant("a", 10, created=-5)]
    v = value_at(terms(), grants, sums({10: 15}), at(60))
    assert balances(v) == {"a": D(0), "b": D(5)}


# -- 2. expiry -------------------------------------------------------------------------------------
def test_expired_balance_is_gone_and_later_usage_burns_the_next_grant():
    # x: 50 @ priority 1, expires at 120; m: 100 @ priority 2.
    # usage 20 at minute 10 → x 30. At 120 x expires: its 30 is gone.
    # usage 40 at minute 150 → m 60 (x can't take it).
    grants = [grant("x", 50, priority=1, expires=120), grant("m", 100, priority=2)]
    usage = sums({10: 20, 150: 40})
    before = value_at(terms(), grants, usage, at(60))
    assert balances(before) == {"x": D(30), "m": D(100)}
    assert before.balance == D(130)
    after = value_at(terms(), grants, usage, at(180))
    assert balances(after) == {"m": D(60)}
    assert after.balance == D(60)
    assert after.usage == D(60) and after.overage == D(0)
    # total available = grant usage in the period (20 from x + 40 from m) + balance 60 = 120
    assert after.total_available_grant_amount == D(120)


# -- 3. rollover at reset --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "min_ro", "max_ro", "used", "before", "after"),
    [
        # min above the balance: min(100, max(30, 10)) = 30
        (100, 30, None, 90, 10, 30),
        # max below the balance: min(50, max(0, 80)) = 50
        (100, 0, 50, 20, 80, 50),
        # default max = amount (v2): min(100, max(0, 70)) = 70 (v1's default 0 would give 0)
        (100, 0, None, 30, 70, 70),
        # unused grant, default max: min(100, max(0, 100)) = 100
        (100, 0, None, 0, 100, 100),
        # min above the amount, capped by the default max = amount: min(40, max(60, 0)) = 40
        (40, 60, None, 40, 0, 40),
        # both bounds: min(50, max(20, 100)) = 50
        (100, 20, 50, 0, 100, 50),
    ],
)
def test_rollover_clamps_each_grant_at_reset(amount, min_ro, max_ro, used, before, after):
    g = grant("g", amount, min_rollover=min_ro, max_rollover=max_ro)
    # `used` at minute 10 of day 0; 5 at minute 10 of day 1 (usage restarts at 0 at the reset).
    usage = sums({10: used, DAY + 10: 5})
    end_of_day0 = value_at(terms(), [g], usage, at(DAY))
    assert end_of_day0.balance == D(before)
    assert end_of_day0.usage == D(used)
    day1 = value_at(terms(), [g], usage, at(DAY + 60))
    assert day1.current_period == (at(DAY), at(2 * DAY))
    assert day1.last_reset == at(DAY)
    assert day1.usage == D(5)  # only the new period's usage
    assert day1.balance == D(after) - 5
    assert day1.overage == D(0)


def test_first_period_is_truncated_at_measure_usage_from():
    # anchor Dec 27 00:00 (earlier than measuring, several periods back), P1D, measuring from
    # Jan 1 06:00 → first period [Jan 1 06:00, Jan 2 00:00), then [Jan 2 00:00, Jan 3 00:00).
    t = terms(anchor=at(-5 * DAY), mus=at(360))
    g = grant("g", 100)
    # 7 at 05:00 (before measuring: ignored), 40 at 06:40, 10 at Jan 2 00:10, 5 at Jan 2 07:00.
    usage = sums({300: 7, 400: 40, DAY + 10: 10, DAY + 420: 5})
    assert period_at(t, at(400)) == (at(360), at(DAY))
    first = value_at(t, [g], usage, at(DAY))
    assert first.current_period == (at(360), at(DAY))
    assert first.last_reset is None
    assert first.usage == D(40) and first.balance == D(60)
    # reset at Jan 2 00:00 (anchor + 6 days), not at 06:00: rollover min(100, 60) = 60;
    # then 10 + 5 in the new period → usage 15, balance 45, both events in one period.
    second = value_at(t, [g], usage, at(DAY + 480))
    assert second.current_period == (at(DAY), at(2 * DAY))
    assert second.last_reset == at(DAY)
    assert second.usage == D(15) and second.balance == D(45)


# -- 4. recurrence ---------------------------------------------------------------------------------
def test_recurring_grant_snaps_back_to_its_amount_ignoring_rollover():
    # r: 50, recurs every 6h from T0 (360, 720, 1080, 1440...), max_rollover 0 (a rollover would
    # zero it). usage 30 at 10 → 20; at 360 → 50; 45 at 400 → 5; at 720 → 50;
    # 48 at 1400 → 2; at 1440 the reset (max_rollover 0 → 0) coincides with a recurrence → 50.
    g = grant("r", 50, max_rollover=0, recurrence=("PT6H", 0))
    usage = sums({10: 30, 400: 45, 1400: 48})
    expected = {60: 20, 370: 50, 500: 5, 730: 50, DAY: 2, DAY + 1: 50}
    for minute, balance in expected.items():
        assert value_at(terms(), [g], usage, at(minute)).balance == D(balance), minute


def test_recurrence_tops_up_to_the_amount_not_above():
    # r: 50 recurs daily at 12:00 (720); unused → stays 50 after the recurrence, not 100.
    g = grant("r", 50, recurrence=("P1D", 720))
    assert value_at(terms(interval="P1M"), [g], sums({}), at(800)).balance == D(50)


# -- 5. overage within a period --------------------------------------------------------------------
def test_overage_is_carried_within_the_period_and_absorbed_by_a_later_grant():
    # a: 10 from 0. usage 25 at 10 → a 0, overage 15.
    # b: 40 from 120. usage 5 at 130 → burn 5 + 15 carried = 20 from b → 20, overage 0.
    grants = [grant("a", 10), grant("b", 40, eff=120)]
    usage = sums({10: 25, 130: 5})
    v = value_at(terms(), grants, usage, at(60))
    assert (v.balance, v.overage, v.usage, v.has_access) == (D(0), D(15), D(25), False)
    v = value_at(terms(), grants, usage, at(180))
    assert balances(v) == {"a": D(0), "b": D(20)}
    assert (v.balance, v.overage, v.usage, v.has_access) == (D(20), D(0), D(30), True)
    # total available = grant usage 10 + 20 + balance 20 = 50 (= 10 + 40)
    assert v.total_available_grant_amount == D(50)


# -- 6. overage at reset ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("preserve", "used", "balance", "overage"),
    [
        # forgiven: a rolls over to max(50, 0) = 50; overage 30 dropped; 5 used → 45
        (False, 130, 45, 0),
        # preserved: a rolls over to 50; carried 30 burns it → 20; 5 used → 15
        (True, 130, 15, 0),
        # preserved, more than the rollover: 80 burns 50 → 0, opens with overage 30; 5 → 35
        (True, 180, 0, 35),
    ],
)
def test_overage_at_automatic_reset(preserve, used, balance, overage):
    # a: 100, min_rollover 50. `used` at minute 10 → a 0, overage used - 100.
    g = grant("a", 100, min_rollover=50)
    usage = sums({10: used, DAY + 10: 5})
    end = value_at(terms(preserve=preserve), [g], usage, at(DAY))
    assert (end.balance, end.overage) == (D(0), D(used - 100))
    v = value_at(terms(preserve=preserve), [g], usage, at(DAY + 60))
    assert (v.balance, v.overage, v.usage) == (D(balance), D(overage), D(5))


def test_preserved_overage_burns_rolled_over_balances_in_priority_order():
    # a: 100 @ priority 2, min_rollover 50; b: 20 @ priority 1, min_rollover 20.
    # usage 150 → b 20 → 0, a 100 → 0, overage 30.
    # reset: a → 50, b → min(20, max(20, 0)) = 20; overage 30 burns b 20 → 0 then a 10 → 40.
    grants = [grant("a", 100, priority=2, min_rollover=50), grant("b", 20, priority=1, min_rollover=20)]
    v = value_at(terms(preserve=True), grants, sums({10: 150}), at(DAY + 60))
    assert balances(v) == {"a": D(40), "b": D(0)}
    assert (v.balance, v.overage, v.usage) == (D(40), D(0), D(0))
    # total available: the 30 burnt at the reset is grant usage of the new period: 30 + 40 = 70
    assert v.total_available_grant_amount == D(70)


@pytest.mark.parametrize(
    ("default", "override", "balance"),
    [
        # manual reset at 720 (schedule kept). a: 100, min_rollover 50; usage 130 → overage 30.
        (False, True, 20),  # reset preserves although the entitlement forgives: 50 - 30 = 20
        (True, False, 50),  # reset forgives although the entitlement preserves: 50
        (True, None, 20),  # no override: the entitlement's default (preserve) → 20
        (False, None, 50),  # no override: the entitlement's default (forgive) → 50
    ],
)
def test_manual_reset_preserve_overage_overrides_the_default(default, override, balance):
    reset = ManualReset(at(720), preserve_overage=override, retain_anchor=True)
    t = terms(preserve=default, resets=(reset,))
    v = value_at(t, [grant("a", 100, min_rollover=50)], sums({10: 130}), at(800))
    assert v.current_period == (at(720), at(DAY))
    assert v.last_reset == at(720)
    assert (v.balance, v.overage, v.usage) == (D(balance), D(0), D(0))


# -- 7. void ---------------------------------------------------------------------------------------
def test_void_is_not_retroactive_and_later_usage_cannot_use_the_grant():
    # a: 100 @ priority 1, voided at 120; b: 50 @ priority 2.
    # usage 30 at 10 → a 70 (that burn stays). usage 20 at 150 → b 30 (a's 70 is gone).
    voided = [grant("a", 100, priority=1, voided=120), grant("b", 50, priority=2)]
    kept = [grant("a", 100, priority=1), grant("b", 50, priority=2)]
    usage = sums({10: 30, 150: 20})
    # before the void: identical to the never-voided grants
    assert value_at(terms(), voided, usage, at(60)) == value_at(terms(), kept, usage, at(60))
    assert balances(value_at(terms(), voided, usage, at(60))) == {"a": D(70), "b": D(50)}
    v = value_at(terms(), voided, usage, at(180))
    assert balances(v) == {"b": D(30)}
    assert (v.balance, v.usage, v.overage) == (D(30), D(50), D(0))
    # total available = grant usage (30 from a + 20 from b) + balance 30 = 80
    assert v.total_available_grant_amount == D(80)


def test_voided_grant_leaves_the_state_at_the_void():
    # a: 100 voided at 120 (30 used → 70 before); b: 50. After 120 the state holds only b.
    grants = [grant("a", 100, priority=1, voided=120), grant("b", 50, priority=2)]
    marks = balances_at(terms(), grants, sums({10: 30}), [at(60), at(120)], at(180))
    assert marks[at(60)].grant_balances == {"a": D(70), "b": D(50)}
    assert marks[at(120)].grant_balances == {"b": D(50)}


def test_usage_after_void_with_no_other_grant_is_overage():
    # a: 100, used 30 → 70; voided at 120; 20 at 150 → no grant: overage 20, balance 0.
    v = value_at(terms(), [grant("a", 100, voided=120)], sums({10: 30, 150: 20}), at(180))
    assert (v.balance, v.overage, v.usage, v.has_access) == (D(0), D(20), D(50), False)


# -- 8. soft and hard limits -----------------------------------------------------------------------
def test_soft_limit_grants_access_at_zero_balance_and_still_computes():
    # a: 10, usage 25 → balance 0, overage 15.
    g, usage = [grant("a", 10)], sums({10: 25})
    soft = value_at(terms(soft=True), g, usage, at(60))
    assert (soft.has_access, soft.balance, soft.overage, soft.usage) == (True, D(0), D(15), D(25))
    hard = value_at(terms(), g, usage, at(60))
    assert (hard.has_access, hard.balance, hard.overage) == (False, D(0), D(15))


@pytest.mark.parametrize(("used", "balance", "access"), [("10", "0", False), ("9.99", "0.01", True)])
def test_hard_limit_access_is_strictly_positive_balance(used, balance, access):
    # a: 10; 10 used → balance exactly 0 → no access; 9.99 used → 0.01 → access.
    v = value_at(terms(), [grant("a", 10)], sums({10: used}), at(60))
    assert (v.balance, v.has_access, v.overage) == (D(balance), access, D(0))


# -- 9. gauge kinds: grants are limits -------------------------------------------------------------
def test_latest_grants_act_as_limits():
    # a: 100 @ priority 1 + b: 75 @ priority 2 = 175; values 40 at 10 then 10 at 20:
    # the latest value is 10 (a sum would be 50) → balance 175 - 10 = 165, taken from a first.
    grants = [grant("a", 100, priority=1), grant("b", 75, priority=2)]
    v = value_at(terms(kind=UsageKind.GAUGE), grants, latest({10: 40, 20: 10}), at(60))
    assert v.balance == D(165)
    assert balances(v) == {"a": D(90), "b": D(75)}
    assert (v.usage, v.overage, v.has_access) == (D(10), D(0), True)
    assert v.total_available_grant_amount == D(175)


def test_latest_above_the_total_is_overage_and_a_lower_value_restores_the_limit():
    # a: 100 + b: 75 = 175; latest 200 at 10 → balance 0, overage 200 - 175 = 25.
    # later the value drops to 10 (at 100): limits, not budgets → balance 165 again.
    grants = [grant("a", 100, priority=1), grant("b", 75, priority=2)]
    usage = latest({10: 200, 100: 10})
    high = value_at(terms(kind=UsageKind.GAUGE), grants, usage, at(60))
    assert (high.balance, high.overage, high.has_access) == (D(0), D(25), False)
    low = value_at(terms(kind=UsageKind.GAUGE), grants, usage, at(120))
    assert (low.balance, low.overage, low.has_access) == (D(165), D(0), True)


def test_max_gauge_against_the_grants_active_now():
    # a: 100 from 0; b: 75 from 30. max over the period: 40 (at 10). At 20 only a is active:
    # 100 - 40 = 60. At 60 both: 175 - 40 = 135.
    grants = [grant("a", 100, priority=1), grant("b", 75, priority=2, eff=30)]
    usage = peak({10: 40, 20: 10})
    assert value_at(terms(kind=UsageKind.GAUGE), grants, usage, at(25)).balance == D(60)
    assert value_at(terms(kind=UsageKind.GAUGE), grants, usage, at(60)).balance == D(135)


def test_gauge_value_restarts_with_the_period():
    # a: 100 + b: 75. Day 0: latest 150 (at 10) → 25; peak 150 → 25.
    # Day 1 (after the reset at 1440): latest 10 at 1500 → 165; the max over day 1 is 10 → 165;
    # before any day-1 event the period's value is 0 → 175 (day 0's 150 doesn't carry over).
    grants = [grant("a", 100, priority=1), grant("b", 75, priority=2)]
    events = {10: 150, DAY + 60: 10}
    gauge = terms(kind=UsageKind.GAUGE)
    for fn in (latest(events), peak(events)):
        assert value_at(gauge, grants, fn, at(60)).balance == D(25)
        v = value_at(gauge, grants, fn, at(DAY + 30))
        assert (v.balance, v.usage, v.current_period) == (D(175), D(0), (at(DAY), at(2 * DAY)))
        v = value_at(gauge, grants, fn, at(DAY + 120))
        assert (v.balance, v.usage) == (D(165), D(10))


def test_gauge_burndown_and_balances_agree_with_the_value():
    # a: 100 with max_rollover 50 (rollover must not apply to limits). latest 20 at 10 on day 0,
    # then (day 1) a grant b: 30 from 1500. Segments hold the period's value against full amounts.
    grants = [grant("a", 100, max_rollover=50), grant("b", 30, priority=2, eff=DAY + 60)]
    usage = latest({10: 20, DAY + 30: 60})
    gauge = terms(kind=UsageKind.GAUGE)
    segments = burndown(gauge, grants, usage, T0, at(DAY + 120))
    # [0, 1440): 100 - 20 = 80; [1440, 1500): 100 - 60 = 40 (no rollover to 50);
    # [1500, 1560): 130 - 60 = 70, burnt from a first.
    assert [(s.start, s.balance_at_start, s.balance_at_end) for s in segments] == [
        (at(0), D(100), D(80)),
        (at(DAY), D(100), D(40)),
        (at(DAY + 60), D(130), D(70)),
    ]
    assert segments[-1].grant_balances_at_end == {"a": D(40), "b": D(30)}
    assert value_at(gauge, grants, usage, at(DAY + 120)).balance == segments[-1].balance_at_end
    marks = balances_at(gauge, grants, usage, [at(DAY + 60)], at(DAY + 120))
    assert marks[at(DAY + 60)].grant_balances == {"a": D(100), "b": D(30)}


# -- 10. manual reset and the anchor ---------------------------------------------------------------
def test_manual_reset_without_retain_anchor_moves_the_schedule():
    # reset at 600, anchor moves: periods [600, 2040), [2040, 3480). No reset at 1440.
    # a: 100; 30 at 100 → 70; rollover at 600 → 70; 10 at 1400 + 10 at 1500 → usage 20, 50.
    t = terms(resets=(ManualReset(at(600), retain_anchor=False),))
    g, usage = [grant("a", 100)], sums({100: 30, 1400: 10, 1500: 10})
    v = value_at(t, g, usage, at(1600))
    assert v.current_period == (at(600), at(600 + DAY))
    assert v.last_reset == at(600)
    assert (v.usage, v.balance) == (D(20), D(50))
    nxt = value_at(t, g, usage, at(2100))
    assert nxt.current_period == (at(2040), at(2040 + DAY))
    assert nxt.last_reset == at(2040)
    assert (nxt.usage, nxt.balance) == (D(0), D(50))


def test_manual_reset_retaining_the_anchor_keeps_the_schedule():
    # reset at 600, anchor kept: periods [600, 1440), [1440, 2880).
    # a: 100; 30 at 100 → 70; rollover at 600 → 70; 10 at 1400 → 60; rollover at 1440 → 60;
    # 10 at 1500 → 50, usage 10 in [1440, 2880).
    t = terms(resets=(ManualReset(at(600), retain_anchor=True),))
    g, usage = [grant("a", 100)], sums({100: 30, 1400: 10, 1500: 10})
    assert value_at(t, g, usage, at(700)).current_period == (at(600), at(DAY))
    v = value_at(t, g, usage, at(1600))
    assert v.current_period == (at(DAY), at(2 * DAY))
    assert v.last_reset == at(DAY)
    assert (v.usage, v.balance) == (D(10), D(50))


# -- 11. issue-after-reset grant -------------------------------------------------------------------
def test_issue_after_reset_grant_snaps_back_to_its_amount_at_every_reset():
    # amount 100, min = max = 100, no expiry.
    # day 0: 70 → 30; reset → min(100, max(100, 30)) = 100.
    # day 1: 130 → 0, overage 30; reset → 100, overage forgiven.
    # day 2: nothing → 100 (never above the amount).
    g = grant("issue", 100, min_rollover=100, max_rollover=100)
    usage = sums({10: 70, DAY + 10: 130})
    expected = {
        DAY: (30, 0),
        DAY + 1: (100, 0),
        2 * DAY: (0, 30),
        2 * DAY + 120: (100, 0),
        3 * DAY + 120: (100, 0),
    }
    for minute, (balance, overage) in expected.items():
        v = value_at(terms(), [g], usage, at(minute))
        assert (v.balance, v.overage) == (D(balance), D(overage)), minute


# -- 12. the value's fields ------------------------------------------------------------------------
def test_value_fields_total_available_usage_overage_grant_balances():
    # a: 50 @ 1; b: 30 @ 2 expiring at 200; c: 40 @ 3 from 300.
    # 60 at 10 → a 0, b 20. At 200 b expires (its 20 is gone). At 300 c starts at 40.
    # 15 at 310 → c 25.
    grants = [
        grant("a", 50, priority=1),
        grant("b", 30, priority=2, expires=200),
        grant("c", 40, priority=3, eff=300),
    ]
    v = value_at(terms(), grants, sums({10: 60, 310: 15}), at(400))
    assert balances(v) == {"a": D(0), "c": D(25)}
    assert (v.balance, v.usage, v.overage) == (D(25), D(75), D(0))
    # grant usage in the period 50 + 10 + 15 = 75, + balance 25 = 100
    # (= active now a 50 + c 40, + the 10 used of since-expired b)
    assert v.total_available_grant_amount == D(100)
    assert v.current_period == (at(0), at(DAY))
    assert v.last_reset is None


def test_total_available_excludes_overage():
    # a: 50; 80 used → balance 0, overage 30; total available = grant usage 50 + 0 = 50.
    v = value_at(terms(), [grant("a", 50)], sums({10: 80}), at(60))
    assert (v.total_available_grant_amount, v.usage, v.overage) == (D(50), D(80), D(30))


# -- 13. calendar periods --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("year", "feb_end"),
    [(2025, 28), (2024, 29)],
)
def test_monthly_periods_from_jan_31_do_not_drift(year, feb_end):
    jan31 = datetime(year, 1, 31, tzinfo=UTC)
    feb = datetime(year, 2, feb_end, tzinfo=UTC)
    mar31 = datetime(year, 3, 31, tzinfo=UTC)
    apr30 = datetime(year, 4, 30, tzinfo=UTC)
    may31 = datetime(year, 5, 31, tzinfo=UTC)
    t = terms(interval="P1M", anchor=jan31, mus=jan31)
    assert period_at(t, jan31 + timedelta(days=3)) == (jan31, feb)
    assert period_at(t, feb) == (feb, mar31)
    assert period_at(t, mar31 - timedelta(minutes=1)) == (feb, mar31)
    assert period_at(t, mar31) == (mar31, apr30)  # Mar 31, not Mar 28/29
    assert period_at(t, apr30 + timedelta(hours=1)) == (apr30, may31)
    assert durations.instants(jan31, "P1M", jan31, may31 + timedelta(minutes=1)) == [
        jan31,
        feb,
        mar31,
        apr30,
        may31,
    ]
    # a 100 issue-style grant resets on Feb end and Mar 31: 60 used Feb 1 → 40, back to 100 on
    # Feb end; 30 used Mar 1 → 70 ... still the Feb period on Mar 30 23:59.
    g = Grant("g", D(100), 1, jan31, jan31, min_rollover=D(100), max_rollover=D(100))
    events = {datetime(year, 2, 1, tzinfo=UTC): D(60), datetime(year, 3, 1, tzinfo=UTC): D(30)}

    def usage(a: datetime, b: datetime) -> Decimal:
        return sum((v for t_, v in events.items() if a <= t_ < b), D(0))

    assert value_at(t, [g], usage, feb).balance == D(40)
    v = value_at(t, [g], usage, mar31)
    assert (v.balance, v.usage, v.current_period) == (D(70), D(30), (feb, mar31))
    v = value_at(t, [g], usage, mar31 + timedelta(minutes=1))
    assert (v.balance, v.usage, v.current_period) == (D(100), D(0), (mar31, apr30))


def test_daily_period_across_a_month_end():
    # P1D anchored Jan 30 12:00: ... Jan 31 12:00 → Feb 1 12:00 → Feb 2 12:00.
    anchor = datetime(2025, 1, 30, 12, tzinfo=UTC)
    t = terms(interval="P1D", anchor=anchor, mus=anchor)
    jan31 = datetime(2025, 1, 31, 12, tzinfo=UTC)
    feb1 = datetime(2025, 2, 1, 12, tzinfo=UTC)
    feb2 = datetime(2025, 2, 2, 12, tzinfo=UTC)
    assert period_at(t, datetime(2025, 2, 1, 3, tzinfo=UTC)) == (jan31, feb1)
    assert period_at(t, datetime(2025, 2, 1, 13, tzinfo=UTC)) == (feb1, feb2)
    assert durations.instants(anchor, "P1D", jan31, feb2) == [jan31, feb1]


# -- 14. snapshots ---------------------------------------------------------------------------------
SNAP_TERMS = terms(resets=(ManualReset(at(2000), preserve_overage=True, retain_anchor=True),))
SNAP_GRANTS = [
    grant("a", 100, priority=1, max_rollover=60),
    grant("b", 50, priority=2, expires=1700),
    grant("c", 20, priority=3, recurrence=("PT12H", 0)),
    grant("d", 40, priority=1, eff=900),
]
SNAP_USAGE = sums({10: 30, 400: 50, 800: 40, 1000: 35, 1500: 90, 1900: 60, 2100: 15, 3000: 25})
SNAP_TIMES = [0, 10, 400, 720, 900, 1440, 1441, 1700, 2000, 2500, 2880, 3100]


@pytest.mark.parametrize("snap_minute", SNAP_TIMES)
def test_snapshot_replay_matches_full_replay(snap_minute):
    snap = snapshot_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(snap_minute))
    assert snap.at == at(snap_minute)
    for minute in [*SNAP_TIMES, 60, 1439, 1999, 2001, 3200]:
        if minute < snap_minute:
            continue
        full = value_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(minute))
        fast = value_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(minute), snapshot=snap)
        assert fast == full, (snap_minute, minute)
    # a snapshot built from an earlier one equals one built from scratch
    chained = snapshot_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(3100), snapshot=snap)
    scratch = snapshot_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(3100))
    assert chained == scratch


def test_a_valid_snapshot_is_actually_used():
    # Tampering with a fresh snapshot's balances shows up in the result: the replay starts there.
    snap = snapshot_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(1200))
    tampered = replace(snap, grant_balances={**snap.grant_balances, "a": snap.grant_balances["a"] + 7})
    full = value_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(1300))
    used = value_at(SNAP_TERMS, SNAP_GRANTS, SNAP_USAGE, at(1300), snapshot=tampered)
    assert used.balance == full.balance + 7
    # a grant starting after the snapshot doesn't invalidate it
    later = [*SNAP_GRANTS, grant("e", 5, eff=1250)]
    assert fingerprint(SNAP_TERMS, later, snap.at) == snap.fingerprint


def _stale_cases():
    base_terms, base_grants = terms(), [grant("a", 100, priority=2), grant("b", 30, priority=3)]
    # a grant effective at 300 (before the snapshot at 1000), added afterwards: it burns first
    yield "grant", base_terms, base_grants, base_terms, [*base_grants, grant("n", 25, priority=1, eff=300)]
    # a void at 400, before the snapshot
    voided = [replace(base_grants[0], voided_at=at(400)), base_grants[1]]
    yield "void", base_terms, base_grants, base_terms, voided
    # a manual reset at 600, before the snapshot (a: max_rollover 10 so the reset matters)
    ro = [replace(base_grants[0], max_rollover=D(10)), base_grants[1]]
    yield "reset", base_terms, ro, terms(resets=(ManualReset(at(600)),)), ro


STALE_USAGE = sums({100: 20, 500: 30, 1100: 10})


@pytest.mark.parametrize(
    ("case", "old_terms", "old_grants", "new_terms", "new_grants"),
    list(_stale_cases()),
    ids=["grant", "void", "reset"],
)
def test_stale_snapshot_is_ignored(case, old_terms, old_grants, new_terms, new_grants):
    snap = snapshot_at(old_terms, old_grants, STALE_USAGE, at(1000))
    assert snap.fingerprint != fingerprint(new_terms, new_grants, snap.at), case
    full = value_at(new_terms, new_grants, STALE_USAGE, at(1200))
    assert value_at(new_terms, new_grants, STALE_USAGE, at(1200), snapshot=snap) == full
    # had it been trusted, the answer would be wrong: force its fingerprint and compare
    forced = replace(snap, fingerprint=fingerprint(new_terms, new_grants, snap.at))
    assert value_at(new_terms, new_grants, STALE_USAGE, at(1200), snapshot=forced) != full


def test_stale_snapshot_numbers():
    # Hand-checked full replays of the stale cases (usage 20 at 100, 30 at 500, 10 at 1100):
    # grant: n 25 @1 from 300; a 100 @2; b 30 @3. 20 → a 80; 30 → n 0 (25), a 75 (5); 10 → a 65.
    g = [grant("a", 100, priority=2), grant("b", 30, priority=3), grant("n", 25, priority=1, eff=300)]
    assert balances(value_at(terms(), g, STALE_USAGE, at(1200))) == {"a": D(65), "b": D(30), "n": D(0)}
    # void: a voided at 400 after 20 → a gone; 30 → b 0; 10 → overage 10.
    g = [grant("a", 100, priority=2, voided=400), grant("b", 30, priority=3)]
    v = value_at(terms(), g, STALE_USAGE, at(1200))
    assert (balances(v), v.overage) == ({"b": D(0)}, D(10))
    # reset at 600 (anchor moves): 20 → a 80; 30 → a 50; reset: a min(10, 50) = 10, b 30;
    # 10 at 1100 → a 0. usage in [600, 2040) = 10.
    g = [grant("a", 100, priority=2, max_rollover=10), grant("b", 30, priority=3)]
    v = value_at(terms(resets=(ManualReset(at(600)),)), g, STALE_USAGE, at(1200))
    assert (balances(v), v.usage) == ({"a": D(0), "b": D(30)}, D(10))


# -- 15. unique_count across phases ----------------------------------------------------------------
def test_unique_count_phase_usage_is_a_difference_of_cumulative_usage():
    # a: 100 from 0; b: 50 from 120 (a phase boundary). values u1, u2 before 120; u1, u3 after.
    # distinct over [0, 200) = {u1, u2, u3} = 3 (the phases' own counts would sum to 2 + 2 = 4).
    # phase [0,120): U = 2 → a 98; phase [120,200): U(0,200) - U(0,120) = 3 - 2 = 1 → a 97.
    grants = [grant("a", 100, priority=1), grant("b", 50, priority=2, eff=120)]
    usage = distinct({10: "u1", 20: "u2", 130: "u1", 140: "u3", DAY + 10: "u1"})
    v = value_at(terms(), grants, usage, at(200))
    assert (v.usage, v.balance) == (D(3), D(147))
    assert balances(v) == {"a": D(97), "b": D(50)}
    # next period: counting restarts, u1 counts again → usage 1; rollover keeps 97 and 50 → 146
    v = value_at(terms(), grants, usage, at(DAY + 60))
    assert (v.usage, v.balance) == (D(1), D(146))


# -- 16. burn-down history and states at instants ------------------------------------------------
BD_GRANTS = [
    grant("a", 50, priority=1),
    grant("b", 30, priority=2, eff=300, expires=900),
    grant("c", 10, priority=3, recurrence=("PT12H", 0)),
]
BD_USAGE = sums({100: 55, 400: 20, 800: 25, 1000: 5, 1450: 3})


def test_burndown_segments_break_at_grant_changes_recurrences_and_resets():
    # [0,300): a 50, c 10; 55 → a 0 (50), c 5 (5).
    # [300,720): b starts 30; 20 → b 10.
    # [720,900): c recurs → 10; 25 → b 0 (10), c 0 (10), overage 5.
    # [900,1440): b expired; 5 → overage 10 (5 new).
    # [1440,1440): the reset's rollover segment: a min(50, 0) = 0; c recurs → 10; overage forgiven.
    # [1440,1500): 3 → c 7.
    segs = burndown(terms(), BD_GRANTS, BD_USAGE, at(0), at(1500))
    assert [(s.start, s.end) for s in segs] == [
        (at(0), at(300)),
        (at(300), at(720)),
        (at(720), at(900)),
        (at(900), at(1440)),
        (at(1440), at(1440)),
        (at(1440), at(1500)),
    ]
    assert [s.usage for s in segs] == [D(55), D(20), D(25), D(5), D(0), D(3)]
    assert [s.overage for s in segs] == [D(0), D(0), D(5), D(5), D(0), D(0)]
    assert [s.grant_usages for s in segs] == [
        {"a": D(50), "c": D(5)},
        {"b": D(20)},
        {"b": D(10), "c": D(10)},
        {},
        {},
        {"c": D(3)},
    ]
    assert [s.grant_balances_at_start for s in segs] == [
        {"a": D(50), "c": D(10)},
        {"a": D(0), "b": D(30), "c": D(5)},
        {"a": D(0), "b": D(10), "c": D(10)},
        {"a": D(0), "c": D(0)},
        {"a": D(0), "c": D(0)},
        {"a": D(0), "c": D(10)},
    ]
    assert [s.grant_balances_at_end for s in segs] == [
        {"a": D(0), "c": D(5)},
        {"a": D(0), "b": D(10), "c": D(5)},
        {"a": D(0), "b": D(0), "c": D(0)},
        {"a": D(0), "c": D(0)},
        {"a": D(0), "c": D(10)},
        {"a": D(0), "c": D(7)},
    ]
    assert [(s.balance_at_start, s.balance_at_end) for s in segs] == [
        (D(60), D(5)),
        (D(35), D(15)),
        (D(20), D(0)),
        (D(0), D(0)),
        (D(0), D(10)),
        (D(10), D(7)),
    ]


def test_burndown_from_mid_period():
    # From 500: the state at 500 is a 0, b 10, c 5 (see above); the first segment is [500, 720).
    segs = burndown(terms(), BD_GRANTS, BD_USAGE, at(500), at(1000))
    assert [(s.start, s.end) for s in segs] == [(at(500), at(720)), (at(720), at(900)), (at(900), at(1000))]
    assert segs[0].grant_balances_at_start == {"a": D(0), "b": D(10), "c": D(5)}
    assert segs[0].usage == D(0)


def test_balances_at_instants():
    # States after what happens at each instant is applied (same timeline as above):
    # 0: a 50, c 10. 300: a 0, b 30 (just started), c 5; usage 55.
    # 720: a 0, b 10, c 10 (recurred); usage 75. 1000 (before the 5 at 1000): a 0, c 0,
    # overage 5, usage 100. 1440 (after the reset): a 0, c 10, usage 0, overage 0.
    marks = balances_at(terms(), BD_GRANTS, BD_USAGE, [at(0), at(300), at(720), at(1000), at(1440)], at(1500))
    got = {
        m: (marks[at(m)].grant_balances, marks[at(m)].usage, marks[at(m)].overage)
        for m in (0, 300, 720, 1000, 1440)
    }
    assert got == {
        0: ({"a": D(50), "c": D(10)}, D(0), D(0)),
        300: ({"a": D(0), "b": D(30), "c": D(5)}, D(55), D(0)),
        720: ({"a": D(0), "b": D(10), "c": D(10)}, D(75), D(0)),
        1000: ({"a": D(0), "c": D(0)}, D(100), D(5)),
        1440: ({"a": D(0), "c": D(10)}, D(0), D(0)),
    }
    assert marks[at(1440)].period_start == at(1440)
