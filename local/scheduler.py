"""EventBridge scheduled rules, emulated: each job invokes its handler with a "Scheduled Event"
once at start-up and then every `interval` seconds. A failing run is logged and the loop goes on."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.handlers import Handler
from local.lambda_context import ACCOUNT_ID, new_context, region

log = logging.getLogger(__name__)


def scheduled_event(rule_name: str, now: datetime | None = None) -> dict[str, Any]:
    """The payload EventBridge sends a Lambda target of a schedule rule."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region(),
        "resources": [f"arn:aws:events:{region()}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


@dataclass
class ScheduledJob:
    rule_name: str  # e.g. meterline-rate; also used as the function name
    handler: Handler
    interval: float  # seconds; <= 0 disables the job
    runs: int = 0
    failures: int = 0

    def run_once(self, context_factory: Callable[[str], Any] = new_context) -> bool:
        self.runs += 1
        try:
            self.handler(scheduled_event(self.rule_name), context_factory(self.rule_name))
            return True
        except Exception:
            self.failures += 1
            log.exception("scheduled %s failed", self.rule_name)
            return False


@dataclass
class Scheduler:
    jobs: list[ScheduledJob]
    context_factory: Callable[[str], Any] = new_context
    stop_event: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _loop(self, job: ScheduledJob) -> None:
        # One thread per job: a slow invoice run must not delay rating (separate rules on AWS).
        while not self.stop_event.is_set():
            job.run_once(self.context_factory)
            if self.stop_event.wait(job.interval):
                return

    def start(self) -> None:
        for job in self.jobs:
            if job.interval > 0:
                t = threading.Thread(
                    target=self._loop, args=(job,), name=f"schedule-{job.rule_name}", daemon=True
                )
                t.start()
                self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout)
