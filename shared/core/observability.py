"""Logging, tracing and metrics for every Lambda entry point (Powertools), configured one way.

The service name comes from the environment (`POWERTOOLS_SERVICE_NAME`, set on every function by
the stack; "meterline" when unset, as locally); each function is told apart by its `function_name`
(injected from the Lambda context into every log line) and a `function` metric dimension. Log lines
carry the correlation id (the API Gateway request id, also the problem+json `instance`) when the
event has one. Library modules log through `Logger(service=SERVICE, child=True)`, a child of the
function's logger (same keys, same format).
Tracing is off outside Lambda and wherever POWERTOOLS_TRACE_DISABLED is set (the local runtime).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import uuid
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities import jmespath_utils

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "meterline"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Meterline"

# Tracing runs in Lambda only (Powertools' own rule); importing the X-Ray SDK costs ~1 s of cold
# start, so outside Lambda (local runtime, tests) no Tracer is built at all.
TRACING = bool(os.environ.get("LAMBDA_TASK_ROOT")) and os.environ.get(
    "POWERTOOLS_TRACE_DISABLED", "false"
).lower() not in ("true", "1")

# HTTP clients X-Ray traces where an asset carries them (requests: Stripe's; the API, rate and
# invoice functions).
TRACED_HTTP_CLIENTS = ("requests", "httpx")


def traced_modules() -> tuple[str, ...]:
    """What X-Ray patches: botocore (every AWS call) and the HTTP clients the asset carries.
    Powertools' default is X-Ray's `patch_all`, which besides these imports sqlite3 and tries ten
    database drivers none of our code uses, on every cold start. Only installed clients are named:
    X-Ray raises on a named module it can't import."""
    return ("botocore", *(m for m in TRACED_HTTP_CLIENTS if importlib.util.find_spec(m) is not None))


log = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE, patch_modules=traced_modules()) if TRACING else None
# The invocation's metric set. Powertools' `Metrics` keeps one set per process, shared by every
# handler in it (all of them in the local stack and the tests), so each invocation's `function`
# dimension collided with the last one's. Each invocation gets its own `EphemeralMetrics`, born with
# its function's dimension and flushed at its end; `metrics` finds the current one.
_current: ContextVar[EphemeralMetrics | None] = ContextVar("metrics", default=None)


class _InvocationMetrics:
    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None:
        current = _current.get()
        if current is None:  # outside a decorated handler (a script): nothing would flush it
            raise RuntimeError("metrics are published from a lambda_entry handler only")
        current.add_metric(name=name, unit=unit, value=value)


metrics = _InvocationMetrics()

# Functions that publish no metric in an invocation are fine; Powertools would warn every time.
warnings.filterwarnings("ignore", message="No application metrics to publish")

Handler = Callable[[dict[str, Any], Any], Any]

_warm = False


def _cold_start() -> bool:
    """True for the first invocation in this process (as Powertools reports it)."""
    global _warm
    cold, _warm = not _warm, True
    return cold


@dataclass
class _InvokeContext:
    """What Powertools reads from a Lambda context, for callers that pass none (tests, scripts)."""

    function_name: str
    memory_limit_in_mb: int = 0
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"


def lambda_entry(function: str, correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
    """Decorate a Lambda handler: context and correlation id in every log line, an X-Ray segment,
    metrics flushed (with a cold-start metric) at the end of the invocation."""

    def decorate(fn: Handler) -> Handler:
        def inner(event: dict[str, Any], context: Any) -> Any:
            own = EphemeralMetrics(
                namespace=NAMESPACE, service=SERVICE, default_dimensions={"function": function}
            )
            token = _current.set(own)
            try:
                return own.log_metrics(fn, capture_cold_start_metric=True)(event, context)
            finally:
                _current.reset(token)

        if tracer is not None:
            # Responses carry customer data: X-Ray keeps the timings and the botocore subsegments only.
            inner = tracer.capture_lambda_handler(inner, capture_response=False)

        def wrapped(event: dict[str, Any], context: Any) -> Any:
            # Powertools' inject_lambda_context appends its keys process-wide; the local stack runs
            # every function on threads of one process, where they overwrote each other (a notify
            # log line said `meterline-rate`). Thread-local keys give each invocation its own.
            keys: dict[str, Any] = {"cold_start": _cold_start(), **vars(build_lambda_context_model(context))}
            if correlation_id_path:
                keys["correlation_id"] = jmespath_utils.query(envelope=correlation_id_path, data=event)
            log.thread_safe_append_keys(**keys)
            try:
                return inner(event, context)
            finally:
                log.thread_safe_clear_keys()

        @functools.wraps(fn)
        def handler(event: dict[str, Any], context: Any) -> Any:
            return wrapped(event, context if context is not None else _InvokeContext(f"meterline-{function}"))

        return handler

    return decorate
