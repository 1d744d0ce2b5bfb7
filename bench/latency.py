"""Ingest-to-query latency on the local stack, over real HTTP (`python -m local` in a subprocess)."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def _start(env_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local", "--port", "0", "--env-file", str(env_file), "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while "METERLINE_URL" not in (env_file.read_text() if env_file.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("local stack did not start")
        time.sleep(0.1)
    return proc


def measure(samples: int = 30) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "meterline.env"
        proc = _start(env_file)
        try:
            env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
            base = env["METERLINE_URL"] + "/v3/openmeter"
            headers = {"Authorization": f"Bearer {env['METERLINE_TOKEN']}"}
            requests.post(
                f"{base}/meters",
                headers=headers,
                timeout=10,
                json={
                    "key": "latency",
                    "name": "Latency",
                    "aggregation": "sum",
                    "event_type": "ping",
                    "value_property": "$.v",
                },
            ).raise_for_status()
            query = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
            latencies = []
            for i in range(1, samples + 1):
                event = {
                    "specversion": "1.0",
                    "id": f"ping-{i}",
                    "source": "bench",
                    "type": "ping",
                    "subject": "c",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {"v": 1},
                }
                t0 = time.perf_counter()
                resp = requests.post(
                    f"{base}/events",
                    json=event,
                    timeout=10,
                    headers={**headers, "Content-Type": "application/cloudevents+json"},
                )
                assert resp.status_code == 202, resp.text
                while True:
                    rows = requests.post(
                        f"{base}/meters/latency/query", json=query, headers=headers, timeout=10
                    ).json()["data"]
                    if rows and rows[0]["value"] == str(i):
                        break
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError("event not visible after 30 s")
                latencies.append(time.perf_counter() - t0)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(
                f"local stack: POST /events -> visible in a meter query, {samples} samples:"
                f" p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
                f" max {latencies[-1] * 1000:.0f} ms (target: 2,000 ms)"
            )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


if __name__ == "__main__":
    measure()
