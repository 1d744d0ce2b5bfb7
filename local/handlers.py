"""Lazily imported Lambda handlers, so the runtime starts even while a function is broken
and tests can swap any handler for a plain callable."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

INGEST = "functions.ingest.handler.lambda_handler"
API = "functions.api.handler.lambda_handler"
AGGREGATE = "functions.aggregate.handler.lambda_handler"
NOTIFY = "functions.notify.handler.lambda_handler"
RATE = "functions.rate.handler.lambda_handler"
INVOICE = "functions.invoice.handler.lambda_handler"


class LazyHandler:
    """Imports `package.module.attr` on first call (like a Lambda cold start), then caches it."""

    def __init__(self, dotted: str) -> None:
        self.dotted = dotted
        self._fn: Handler | None = None
        self._lock = threading.Lock()

    def resolve(self) -> Handler:
        if self._fn is None:
            with self._lock:
                if self._fn is None:
                    module, _, attr = self.dotted.rpartition(".")
                    self._fn = getattr(importlib.import_module(module), attr)
        return self._fn

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        return self.resolve()(event, context)

    def __repr__(self) -> str:
        return f"LazyHandler({self.dotted!r})"


@dataclass
class Handlers:
    """The six functions of the stack; each field may be replaced by any callable.

    `notify_retry` is the notify function again, as the target of its retry schedule (on AWS an
    EventBridge rule invokes the same Lambda): a separate field so each entry point can be swapped.
    """

    ingest: Handler = field(default_factory=lambda: LazyHandler(INGEST))
    api: Handler = field(default_factory=lambda: LazyHandler(API))
    aggregate: Handler = field(default_factory=lambda: LazyHandler(AGGREGATE))
    notify: Handler = field(default_factory=lambda: LazyHandler(NOTIFY))
    rate: Handler = field(default_factory=lambda: LazyHandler(RATE))
    invoice: Handler = field(default_factory=lambda: LazyHandler(INVOICE))
    notify_retry: Handler = field(default_factory=lambda: LazyHandler(NOTIFY))
