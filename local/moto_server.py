"""moto's server on loopback, standing in for every AWS service the stack uses."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from local import moto_speedups
from local.persistence import DurableState, reset_backends

log = logging.getLogger(__name__)

# Any of these would let a call escape to real AWS or a user's profile instead of moto.
_LEAKY_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


class _Server(ThreadedMotoServer):
    """ThreadedMotoServer serving an app we built (restored and journaled) before it listens."""

    def __init__(self, host: str, port: int, app: object) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)
        self._app = app

    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address, self._port, self._app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


class MotoServer:
    """`state_dir` None = state in memory only; else restored from and journaled to that directory."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state_dir: Path | None = None) -> None:
        moto_speedups.apply()
        self.host, self.port = host, port
        self.state = DurableState(state_dir) if state_dir is not None else None
        self._server: _Server | None = None
        self.url = ""

    def start(self) -> str:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # it logs every request otherwise
        app = DomainDispatcherApplication(create_backend_app)
        if self.state is not None:
            self.state.open(app)  # restore (snapshot + journal replay) before anyone can connect
            app = self.state.middleware(app)  # type: ignore[assignment]
        else:
            reset_backends()  # memory only: start empty, whatever an earlier server in this process left
        self._server = _Server(self.host, self.port, app)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        log.info("moto server listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        if self._server is not None and self.url:
            self._server.stop()
            self.url = ""
        self._server = None
        if self.state is not None:
            self.state.close()


def point_aws_env_at(endpoint_url: str) -> None:
    """Send every botocore client in this process to `endpoint_url` with fake credentials.

    botocore honours AWS_ENDPOINT_URL for all services, so handlers need no local branch.
    """
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in _LEAKY_ENV:
            del os.environ[name]
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
