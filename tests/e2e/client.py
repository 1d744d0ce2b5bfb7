"""The HTTP helpers the test-clock end-to-end tests share: call an endpoint expecting a status, poll
until a check holds (events reach the counters through Kinesis, asynchronously), advance a clock
and wait for it to be ready."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

Call = Callable[..., Any]


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def http_client(
    local_stack: dict[str, str], advance_timeout: float = 30
) -> tuple[Call, Callable[..., Any], Callable[[str, datetime], None]]:
    """`(call, eventually, advance)` against the stack `local_stack` describes."""
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    h = {"Authorization": f"Bearer {local_stack['METERLINE_TOKEN']}", "Content-Type": "application/json"}

    def call(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = requests.request(method, f"{base}{path}", headers=h, json=body, timeout=30)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.text else None

    def eventually(path: str, check: Any, timeout: float = 30) -> Any:
        """Poll until `check(body)` holds."""
        deadline = time.monotonic() + timeout
        body = call("GET", path)
        while not check(body) and time.monotonic() < deadline:
            time.sleep(0.2)
            body = call("GET", path)
        assert check(body), body
        return body

    def advance(clock_id: str, to: datetime) -> None:
        assert call("POST", f"/test-clocks/{clock_id}/advance", {"frozen_time": iso(to)}, 202)
        got = eventually(f"/test-clocks/{clock_id}", lambda c: c["status"] == "ready", advance_timeout)
        assert got["frozen_time"] == iso(to)

    return call, eventually, advance
