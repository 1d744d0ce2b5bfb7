"""Deliveries: claim, send, record, retry; one worker per channel so a slow or failing endpoint
only ever delays its own deliveries (each request is bounded by the sender's timeouts).

Used twice: inline, right after the notify function created events (first attempt), and by the
retry sweep (scheduled event every minute) for every delivery whose next attempt is due.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from shared.core.timeutil import Clock
from shared.notifications import retry
from shared.notifications.models import Attempt, Channel, Delivery, NotificationEvent, State
from shared.notifications.repository import NotificationConfigRepository
from shared.notifications.sender import Sender
from shared.notifications.store import NotificationStore

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)  # > connect + read timeout: a live sender never loses its claim
MAX_WORKERS = 32
Work = tuple[NotificationEvent, Delivery]


class Dispatcher:
    def __init__(
        self,
        store: NotificationStore,
        config: NotificationConfigRepository,
        sender: Sender,
        clock: Clock | None = None,
        rand: retry.Random = random.random,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.sender = sender
        self.clock = clock or Clock()
        self.rand = rand
        # Seconds left in the Lambda invocation: no new attempt starts in the last 15 s.
        self.time_left = time_left

    def deliver(self, work: list[Work]) -> None:
        by_channel: dict[str, list[Work]] = defaultdict(list)
        for item in work:
            by_channel[item[1].channel_id].append(item)
        if not by_channel:
            return
        channels = {cid: self.config.get_channel(cid) for cid in by_channel}
        workers = min(len(by_channel), MAX_WORKERS)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify") as pool:
            futures = [
                pool.submit(self._channel_worker, channels[cid], items) for cid, items in by_channel.items()
            ]
            for f in futures:
                f.result()

    def _channel_worker(self, channel: Channel | None, items: list[Work]) -> None:
        for event, delivery in items:
            if self.time_left is not None and self.time_left() < 15:
                return  # still due: the next sweep takes it
            try:
                self.attempt(event, delivery, channel)
            except Exception:  # one broken delivery must not stop the channel's others
                log.exception("delivery %s/%s failed unexpectedly", event.id, delivery.channel_id)

    def sweep(self, limit: int = 200) -> int:
        """Attempt every due delivery (up to `limit`); returns how many were found."""
        due = self.store.due(self.clock.now(), limit)
        events: dict[str, NotificationEvent | None] = {}
        work: list[Work] = []
        for event_id, channel_id in due:
            if event_id not in events:
                events[event_id] = self.store.get(event_id)
            event = events[event_id]
            match = [d for d in event.deliveries if d.channel_id == channel_id] if event else []
            if event and match:
                work.append((event, match[0]))
        self.deliver(work)
        return len(due)

    def attempt(self, event: NotificationEvent, delivery: Delivery, channel: Channel | None) -> None:
        now = self.clock.now()
        if not self.store.claim(delivery, now, LEASE):
            return  # another sender has it (or it already finished)
        if channel is None or channel.disabled:
            reason = "channel deleted" if channel is None else "channel disabled"
            attempt = Attempt(State.FAILED, now, None, 0, reason)
            self.store.finish(
                delivery, attempt, State.FAILED, None, reason, self._dead_letter(event, delivery, reason)
            )
            return
        result = self.sender.send(channel, event.id, event.payload_bytes(), int(now.timestamp()), event.type)
        attempt = Attempt(
            State.SUCCESS if result.ok else State.FAILED,
            now,
            result.status_code,
            result.duration_ms,
            result.body,
            channel.url or channel.topic_arn,
        )
        if result.ok:
            self.store.finish(delivery, attempt, State.SUCCESS, None, None)
            return
        reason = f"attempt {delivery.attempt_count} failed: " + (
            f"HTTP {result.status_code}" if result.status_code else result.body[:200]
        )
        next_at = (
            retry.next_attempt(delivery.window_start, now, delivery.attempt_count, self.rand)
            if result.retryable
            else None
        )
        if next_at is None:
            self.store.finish(
                delivery, attempt, State.FAILED, None, reason, self._dead_letter(event, delivery, reason)
            )
        else:
            self.store.finish(delivery, attempt, State.PENDING, next_at, reason)

    @staticmethod
    def _dead_letter(event: NotificationEvent, delivery: Delivery, reason: str) -> dict[str, Any]:
        # Enough to replay by hand (or via POST .../resend) once the endpoint is fixed.
        return {
            "event_id": event.id,
            "channel_id": delivery.channel_id,
            "rule_id": event.rule.get("id"),
            "type": event.type,
            "reason": reason,
            "attempts": delivery.attempt_count,
            "payload": event.payload_bytes().decode(),
        }
