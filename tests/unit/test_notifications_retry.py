"""Retry schedule: exponential backoff with jitter, for at least 24 hours (clock and randomness injected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.notifications.retry import BASE, CAP, RETRY_WINDOW, backoff, next_attempt

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    assert backoff(1, lambda: 0.5) == BASE
    assert backoff(2, lambda: 0.5) == BASE * 2
    assert backoff(5, lambda: 0.5) == BASE * 16
    assert backoff(20, lambda: 0.5) == CAP
    assert backoff(3, lambda: 0.0) == BASE * 4 * 0.8
    assert backoff(3, lambda: 0.999999) < BASE * 4 * 1.2


def test_schedule_spans_at_least_24_hours_then_gives_up() -> None:
    for rand in (lambda: 0.0, lambda: 0.5, lambda: 0.999999):
        now, attempt, times = T0, 1, [T0]
        while (nxt := next_attempt(T0, now, attempt, rand)) is not None:
            assert nxt > now
            now, attempt = nxt, attempt + 1
            times.append(now)
        assert times[-1] - T0 >= RETRY_WINDOW  # the last attempt is at least 24 h after the first
        assert times[-1] - T0 < RETRY_WINDOW + CAP * 1.2
        assert 10 <= len(times) <= 20


def test_failure_exactly_at_24_hours_is_final() -> None:
    assert next_attempt(T0, T0 + RETRY_WINDOW - timedelta(seconds=1), 9, lambda: 0.5) is not None
    assert next_attempt(T0, T0 + RETRY_WINDOW, 9, lambda: 0.5) is None
