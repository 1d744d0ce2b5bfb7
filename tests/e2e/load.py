"""Concurrent ingest against a running local stack, and the sums it must settle on.

Producers send batches of CloudEvents; some batches are resent after their 202 (a client retry)
and some are sent by two threads at once (a duplicated delivery). A batch that fails (e.g. the
stack was killed) is retried by the caller later, as a client would. Expected totals come from
the distinct event ids, so anything lost or counted twice shows.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

EVENT_TYPE = "load"
PERIOD = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
SUM_METER = {
    "key": "load_tokens",
    "name": "Load tokens",
    "aggregation": "sum",
    "event_type": EVENT_TYPE,
    "value_property": "$.tokens",
}
COUNT_METER = {"key": "load_events", "name": "Load events", "aggregation": "count", "event_type": EVENT_TYPE}


def headers(token: str, ctype: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": ctype}


def create_meters(base: str, token: str) -> None:
    for meter in (SUM_METER, COUNT_METER):
        resp = requests.post(f"{base}/meters", headers=headers(token), json=meter, timeout=60)
        assert resp.status_code in (201, 409), resp.text


def make_batches(prefix: str, events: int, batch: int = 100) -> list[list[dict[str, Any]]]:
    out = []
    for start in range(0, events, batch):
        out.append(
            [
                {
                    "specversion": "1.0",
                    "id": f"{prefix}-{n}",
                    "source": "load",
                    "type": EVENT_TYPE,
                    "subject": f"customer-{n % 5}",
                    "time": f"2026-03-01T{n % 24:02d}:00:00Z",
                    "data": {"tokens": f"{n % 7 + 1}.5"},
                }
                for n in range(start, min(start + batch, events))
            ]
        )
    return out


@dataclass
class Load:
    base: str
    token: str
    threads: int = 8
    resend_ratio: float = 0.1  # resent after their 202
    duplicate_ratio: float = 0.1  # sent by two threads at once
    seed: int = 8
    acked: dict[str, Decimal] = field(default_factory=dict)  # event id -> tokens, once 202'd
    failed: list[list[dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            resp = requests.post(
                f"{self.base}/events",
                headers=headers(self.token, "application/cloudevents-batch+json"),
                json=batch,
                timeout=60,
            )
        except requests.RequestException:
            return False
        if resp.status_code != 202:
            return False
        with self._lock:
            for event in batch:
                self.acked[event["id"]] = Decimal(event["data"]["tokens"])
        return True

    def run(
        self, batches: list[list[dict[str, Any]]], on_progress: Callable[[int], None] | None = None
    ) -> None:
        """Send every batch from `threads` threads; batches that fail are kept in `failed`."""
        rng = random.Random(self.seed)
        plan = [(b, rng.random() < self.resend_ratio, rng.random() < self.duplicate_ratio) for b in batches]
        done = [0]

        def one(item: tuple[list[dict[str, Any]], bool, bool]) -> None:
            batch, resend, duplicate = item
            if duplicate:
                twin = threading.Thread(target=self.send, args=(batch,))
                twin.start()
            ok = self.send(batch)
            if ok and resend:
                self.send(batch)
            if duplicate:
                twin.join()
            with self._lock:
                if not ok:
                    self.failed.append(batch)
                done[0] += 1
                count = done[0]
            if on_progress:
                on_progress(count)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(one, plan))

    def retry_failed(self, attempts: int = 3) -> None:
        for _ in range(attempts):
            pending, self.failed = self.failed, []
            for batch in pending:
                if not self.send(batch):
                    self.failed.append(batch)
            if not self.failed:
                return
        raise AssertionError(f"{len(self.failed)} batches still failing")

    def expected(self) -> tuple[Decimal, int]:
        return sum(self.acked.values(), Decimal(0)), len(self.acked)


def totals(base: str, token: str) -> tuple[Decimal, int]:
    got = []
    for meter in (SUM_METER, COUNT_METER):
        resp = requests.post(
            f"{base}/meters/{meter['key']}/query", headers=headers(token), json=PERIOD, timeout=60
        )
        assert resp.status_code == 200, resp.text
        got.append(sum((Decimal(row["value"]) for row in resp.json()["data"]), Decimal(0)))
    return got[0], int(got[1])


def settle(
    base: str, token: str, expected: tuple[Decimal, int], timeout: float = 60.0
) -> tuple[Decimal, int]:
    """Poll until sum and count are the expected ones (or time runs out); return the totals then.

    Both are compared: the aggregate updates the two meters' counters one after the other, so a
    count that is complete says nothing about the sum read a moment earlier."""
    deadline = time.monotonic() + timeout
    got = totals(base, token)
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        got = totals(base, token)
    return got
