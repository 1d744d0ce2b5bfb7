"""Each invocation's log lines carry its own function's context, also when several functions run at once
on threads of one process (the local stack), where Powertools' process-wide keys overwrote each other."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from shared.core.observability import SERVICE, lambda_entry, log


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_concurrent_functions_log_with_their_own_function_name() -> None:
    both_inside = threading.Barrier(2, timeout=10)

    def make(name: str) -> Any:
        @lambda_entry(name)
        def handler(event: dict[str, Any], context: Any) -> None:
            both_inside.wait()  # both invocations have set their keys before either logs
            log.warning("working", extra={"who": name})
            both_inside.wait()

        return handler

    capture = _Lines()
    capture.setFormatter(log.registered_formatter)
    logger = logging.getLogger(SERVICE)
    level = logger.level
    logger.setLevel(logging.INFO)  # whatever level an earlier test (or the local runtime) left
    logger.addHandler(capture)
    try:
        threads = [threading.Thread(target=make(n), args=({}, None)) for n in ("rate", "notify")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    working = [line for line in capture.lines if line.get("message") == "working"]
    assert sorted((line["who"], line["function_name"]) for line in working) == [
        ("notify", "meterline-notify"),
        ("rate", "meterline-rate"),
    ]
    # Nothing leaks into the next log line outside an invocation.
    assert "function_name" not in log.thread_safe_get_current_keys()
