"""The assembled runtime on a real moto server with fake handlers, and the CLI end to end."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.envfile import read_env_file
from local.handlers import Handlers
from local.kinesis_poller import EsmConfig
from local.runtime import LocalRuntime, RuntimeConfig
from shared.aws import resources as r

REPO = Path(__file__).resolve().parents[2]


class Pipeline:
    """Fake functions wired like the real ones: ingest -> Kinesis -> aggregate -> SNS -> notify."""

    def __init__(self) -> None:
        self.aggregated: list[dict[str, Any]] = []
        self.notified: list[dict[str, Any]] = []
        self.scheduled: list[str] = []
        self.done = threading.Event()

    def ingest(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Handlers find resources only through env vars + AWS_ENDPOINT_URL, as on AWS.
        boto3.client("kinesis").put_record(
            StreamName=os.environ[r.EVENTS_STREAM.env_var], Data=event["body"].encode(), PartitionKey="s"
        )
        return {"statusCode": 202, "headers": {}, "body": ""}

    def aggregate(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        for rec in event["Records"]:
            self.aggregated.append(json.loads(base64.b64decode(rec["kinesis"]["data"])))
            boto3.client("sns").publish(TopicArn=os.environ[r.DOMAIN_TOPIC.env_var], Message="usage.updated")
        return {"batchItemFailures": []}

    def notify(self, event: dict[str, Any], context: Any) -> None:
        self.notified.append(event)
        self.done.set()

    def handlers(self) -> Handlers:
        return Handlers(
            ingest=self.ingest,
            api=lambda e, c: {"statusCode": 200, "body": "{}"},
            aggregate=self.aggregate,
            notify=self.notify,
            rate=lambda e, c: self.scheduled.append("rate"),
            invoice=lambda e, c: self.scheduled.append("invoice"),
        )


def test_runtime_runs_the_pipeline_and_cleans_up(tmp_path: Path) -> None:
    env_file = tmp_path / ".local" / "meterline.env"
    tokens: list[tuple[str, str, str]] = []
    before = dict(os.environ)
    pipeline = Pipeline()
    config = RuntimeConfig(port=0, env_file=env_file, esm=EsmConfig(poll_interval=0.05))

    def start() -> LocalRuntime:
        rt = LocalRuntime(
            config,
            pipeline.handlers(),
            ensure_token=lambda *a: tokens.append(a),
            new_token=lambda: "mlt_fixed",
        )
        rt.start()
        return rt

    rt = start()
    try:
        values = read_env_file(env_file)
        assert values == {
            "METERLINE_URL": rt.base_url,
            "METERLINE_TOKEN": "mlt_fixed",
            "METERLINE_MOTO_URL": rt.moto.url,
        }
        assert os.environ["AWS_ENDPOINT_URL"] == rt.moto.url
        assert os.environ[r.CONFIG_TABLE.env_var] == r.CONFIG_TABLE.local_name
        resp = requests.post(f"{rt.api_url}/events", json={"id": "e1"}, timeout=5)
        assert resp.status_code == 202
        assert pipeline.done.wait(30), "event did not flow ingest -> kinesis -> aggregate -> sns -> notify"
        assert pipeline.aggregated == [{"id": "e1"}]
        assert pipeline.notified[0]["Records"][0]["Sns"]["Message"] == "usage.updated"
        assert sorted(pipeline.scheduled) == ["invoice", "rate"]  # both ran once at start-up
    finally:
        rt.stop()
    assert read_env_file(env_file) == {"METERLINE_TOKEN": "mlt_fixed"}  # URL gone, token kept
    assert dict(os.environ) == before

    # second start reuses the token from the env file; the context manager stops it
    with LocalRuntime(config, pipeline.handlers(), ensure_token=lambda *a: tokens.append(a)) as rt2:
        rt2.drain(30)
    assert tokens == [("mlt_fixed", "admin", "local-admin")] * 2


@pytest.mark.skipif(importlib.util.find_spec("shared.auth.tokens") is None, reason="needs shared.auth.tokens")
def test_cli_starts_writes_env_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file = tmp_path / "meterline.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local",
            "--port",
            "0",
            "--env-file",
            str(env_file),
            "--rate-interval",
            "0",
            "--invoice-interval",
            "0",
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "METERLINE_URL" not in read_env_file(env_file):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "stack did not come up"
            time.sleep(0.05)
        values = read_env_file(env_file)
        assert values["METERLINE_TOKEN"]
        resp = requests.get(f"{values['METERLINE_URL']}/not-the-api", timeout=5)
        assert resp.status_code == 404 and resp.headers["Content-Type"] == "application/problem+json"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert f"{values['METERLINE_URL']}/v3/openmeter" in out and values["METERLINE_TOKEN"] in out
    assert read_env_file(env_file) == {"METERLINE_TOKEN": values["METERLINE_TOKEN"]}
