"""A tiny webhook endpoint on loopback for notification tests: records requests, answers per path."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    gate: threading.Event | None = None  # block the response until set (a slow endpoint)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[Received] = []
        self.arrived = threading.Condition()
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver.arrived.notify_all()
                reply = receiver.replies.get(self.path, Reply())
                if reply.gate is not None:
                    reply.gate.wait(30)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """Block (bounded) until `count` requests reached `path`; returns them."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.on(path)) >= count, timeout)
            return self.on(path)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for reply in self.replies.values():
            if reply.gate is not None:
                reply.gate.set()
        self.server.shutdown()
        self.server.server_close()
