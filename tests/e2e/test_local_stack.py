"""End to end over real HTTP: `python -m local` in a subprocess, ingest -> aggregate -> query.

Nothing in-process: the test talks to the local API Gateway front on loopback, the events go
through moto's Kinesis, the local poller and the real aggregate handler.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env_file = tmp_path_factory.mktemp("local") / "meterline.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(POWERTOOLS_METRICS_DISABLED="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "local", "--port", "0", "--env-file", str(env_file), "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"local stack did not start (exit {proc.returncode}):\n{out[-3000:]}")
        time.sleep(0.1)
    try:
        yield _read_env(env_file)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=20) == 0, "the local stack should stop cleanly on Ctrl-C"
        finally:
            if proc.poll() is None:
                proc.kill()


def _headers(token: str, ctype: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": ctype}


def test_event_flows_from_ingest_to_query_over_http(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    token = local_stack["METERLINE_TOKEN"]
    meter = requests.post(
        f"{base}/meters",
        headers=_headers(token),
        timeout=10,
        json={
            "key": "tokens_total",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "prompt",
            "value_property": "$.tokens",
            "dimensions": {"model": "$.model"},
        },
    )
    assert meter.status_code == 201, meter.text
    event = {
        "specversion": "1.0",
        "id": "e2e-1",
        "source": "e2e",
        "type": "prompt",
        "subject": "customer-1",
        "time": "2026-01-01T10:00:05Z",
        "data": {"tokens": "42.5", "model": "gpt-4o"},
    }
    resp = requests.post(
        f"{base}/events", headers=_headers(token, "application/cloudevents+json"), json=event, timeout=10
    )
    assert resp.status_code == 202, resp.text
    # The same event again (a client retry) must not count twice.
    assert (
        requests.post(
            f"{base}/events", headers=_headers(token, "application/cloudevents+json"), json=event, timeout=10
        ).status_code
        == 202
    )

    query = {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "granularity": "PT1H",
        "group_by_dimensions": ["model", "subject"],
    }
    rows: list[dict[str, object]] = []
    deadline = time.monotonic() + 20  # generous: CI machines are slow; the benchmark measures latency
    while time.monotonic() < deadline:
        got = requests.post(
            f"{base}/meters/tokens_total/query", headers=_headers(token), json=query, timeout=10
        )
        assert got.status_code == 200, got.text
        rows = got.json()["data"]
        if rows:
            break
        time.sleep(0.05)
    assert rows == [
        {
            "value": "42.5",
            "from": "2026-01-01T10:00:00Z",
            "to": "2026-01-01T11:00:00Z",
            "dimensions": {"model": "gpt-4o", "subject": "customer-1"},
        }
    ]

    csv = requests.post(
        f"{base}/meters/tokens_total/query",
        json=query,
        timeout=10,
        headers={**_headers(token), "Accept": "text/csv"},
    )
    assert csv.text.splitlines() == [
        "from,to,subject,model,value",
        "2026-01-01T10:00:00Z,2026-01-01T11:00:00Z,customer-1,gpt-4o,42.5",
    ]


def test_auth_is_enforced_over_http(local_stack: dict[str, str]) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    resp = requests.get(f"{base}/meters", timeout=10)
    assert resp.status_code == 401
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert resp.json()["status"] == 401
    bad = requests.post(
        f"{base}/events",
        data=b"{}",
        timeout=10,
        headers=_headers(local_stack["METERLINE_TOKEN"], "application/cloudevents+json"),
    )
    assert bad.status_code == 400
    assert {p["field"] for p in bad.json()["invalid_parameters"]} >= {"id", "source", "type", "subject"}
