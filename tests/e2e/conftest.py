"""The local stack for end-to-end tests: `python -m local` in a subprocess, one per test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
