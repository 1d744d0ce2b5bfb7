"""The local stack keeps what it acknowledged: concurrent ingest, `kill -9` in the middle, restart.

Real `python -m local` subprocesses on one state directory. Every event that got a 202 must be
counted exactly once after the restart; batches that failed while the stack was down are retried,
as a client would, and must not double count either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from local.envfile import forget_urls
from tests.e2e.conftest import ROOT, _read_env
from tests.e2e.load import Load, create_meters, make_batches, settle, totals

pytestmark = pytest.mark.e2e

EVENTS, BATCH = 160, 10  # twice as many batches as threads: the kill lands mid-flight


def _start(env_file: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(POWERTOOLS_METRICS_DISABLED="true")
    args = ["--port", "0", "--env-file", str(env_file), "--log-level", "WARNING"]
    args += ["--rate-interval", "0", "--invoice-interval", "0", *extra]
    forget_urls(env_file)  # a killed stack leaves its URL behind: wait for the new one
    proc = subprocess.Popen(
        [sys.executable, "-m", "local", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while "METERLINE_URL" not in (_read_env(env_file) if env_file.exists() else {}):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"local stack did not start (exit {proc.returncode}):\n{out[-3000:]}")
        time.sleep(0.05)
    return proc, _read_env(env_file)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=30) == 0, "the local stack should stop cleanly on Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_9_mid_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    env_file = tmp_path / "meterline.env"
    proc, values = _start(env_file)
    base, token = values["METERLINE_URL"] + "/v3/openmeter", values["METERLINE_TOKEN"]
    try:
        create_meters(base, token)
        load = Load(base, token, threads=8)
        batches = make_batches("kill", EVENTS, BATCH)
        killed = threading.Event()

        def kill_halfway(done: int) -> None:
            if done >= len(batches) // 2 and not killed.is_set():
                killed.set()
                proc.send_signal(signal.SIGKILL)  # no shutdown hook runs: only the journal is left

        load.run(batches, on_progress=kill_halfway)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert load.acked and load.failed, "the kill should land while batches are in flight"
    finally:
        if proc.poll() is None:
            proc.kill()

    proc, values = _start(env_file)  # same env file => same state directory and token
    try:
        base = values["METERLINE_URL"] + "/v3/openmeter"
        load.base = base
        load.retry_failed()
        expected = load.expected()
        assert expected[1] == EVENTS
        assert settle(base, token, expected, timeout=120) == expected
        time.sleep(0.5)  # nothing counted twice shows up late either
        assert totals(base, token) == expected
    finally:
        _stop(proc)

    # a clean stop and start keeps it too (from the snapshot, not the journal)
    proc, values = _start(env_file)
    try:
        assert totals(values["METERLINE_URL"] + "/v3/openmeter", token) == expected
    finally:
        _stop(proc)

    wiped = subprocess.run(
        [sys.executable, "-m", "local", "--env-file", str(env_file), "--wipe"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wiped.returncode == 0, wiped.stderr
    assert not (tmp_path / "state").exists()
