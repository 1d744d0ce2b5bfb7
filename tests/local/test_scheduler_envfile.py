"""Scheduler events and start-up behaviour; env-file writing and admin-token reuse."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.auth import bootstrap_admin_token
from local.envfile import forget_urls, read_env_file, update_env_file, write_env_file
from local.scheduler import ScheduledJob, Scheduler, scheduled_event


def test_scheduled_event_shape() -> None:
    event = scheduled_event("meterline-rate", datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))
    uuid.UUID(event.pop("id"))
    assert event == {
        "version": "0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-03-01T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/meterline-rate"],
        "detail": {},
    }


def test_scheduler_runs_at_start_then_every_interval_and_survives_errors() -> None:
    calls: list[tuple[str, dict[str, Any], Any]] = []
    three = threading.Event()

    def rate(event: dict[str, Any], context: Any) -> None:
        calls.append(("rate", event, context))
        if len(calls) >= 3:
            three.set()
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    invoice_calls: list[dict[str, Any]] = []
    rate_job = ScheduledJob("meterline-rate", rate, 0.02)
    scheduler = Scheduler(
        [rate_job, ScheduledJob("meterline-invoice", lambda e, c: invoice_calls.append(e), 60)]
    )
    scheduler.start()
    try:
        assert three.wait(30)
    finally:
        scheduler.stop()
    assert rate_job.failures == 1 and rate_job.runs >= 3
    assert len(invoice_calls) == 1  # the start-up run; the next one is an hour away
    assert invoice_calls[0]["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/meterline-invoice"]
    assert calls[0][2].function_name == "meterline-rate"


def test_disabled_job_never_runs() -> None:
    ran: list[Any] = []
    scheduler = Scheduler([ScheduledJob("meterline-rate", lambda e, c: ran.append(e), 0)])
    scheduler.start()
    time.sleep(0.05)
    scheduler.stop()
    assert ran == []


def test_env_file_roundtrip_is_atomic_and_merges(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "meterline.env"
    write_env_file(path, {"METERLINE_URL": "http://127.0.0.1:1", "METERLINE_TOKEN": "t1", "OTHER": "x"})
    assert read_env_file(path) == {
        "METERLINE_URL": "http://127.0.0.1:1",
        "METERLINE_TOKEN": "t1",
        "OTHER": "x",
    }
    update_env_file(path, {"METERLINE_URL": "http://127.0.0.1:2"})
    assert read_env_file(path)["METERLINE_URL"] == "http://127.0.0.1:2"
    assert read_env_file(path)["OTHER"] == "x"
    assert [p.name for p in path.parent.iterdir()] == ["meterline.env"]  # no temp files left behind
    assert path.stat().st_mode & 0o077 == 0  # holds a token: owner-only


def test_env_file_parser_tolerates_shell_syntax(tmp_path: Path) -> None:
    path = tmp_path / "e.env"
    path.write_text("# comment\n\nexport A='1'\nB=\"two words\"\nnot a pair\nC=x=y\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "x=y"}
    assert read_env_file(tmp_path / "missing.env") == {}


def test_forget_urls_keeps_the_token(tmp_path: Path) -> None:
    path = tmp_path / "m.env"
    write_env_file(path, {"METERLINE_URL": "u", "METERLINE_MOTO_URL": "m", "METERLINE_TOKEN": "t"})
    forget_urls(path)
    assert read_env_file(path) == {"METERLINE_TOKEN": "t"}
    forget_urls(tmp_path / "absent.env")  # no-op
    assert not (tmp_path / "absent.env").exists()


def test_admin_token_is_generated_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "m.env"
    registered: list[tuple[str, str, str]] = []

    def ensure(raw: str, role: str, name: str) -> None:
        registered.append((raw, role, name))

    first = bootstrap_admin_token(path, ensure, lambda: "mlt_new")
    assert first == "mlt_new"
    write_env_file(path, {"METERLINE_TOKEN": first})
    second = bootstrap_admin_token(path, ensure, lambda: "mlt_other")
    assert second == "mlt_new"
    assert registered == [("mlt_new", "admin", "local-admin")] * 2  # re-registered: moto starts empty
