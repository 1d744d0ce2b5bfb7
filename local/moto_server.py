"""moto's server on loopback, standing in for every AWS service the stack uses."""

from __future__ import annotations

import logging
import os

from moto.server import ThreadedMotoServer

from local import moto_speedups

log = logging.getLogger(__name__)

# Any of these would let a call escape to real AWS or a user's profile instead of moto.
_LEAKY_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


class MotoServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        moto_speedups.apply()
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""

    def start(self) -> str:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # it logs every request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        log.info("moto server listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        if self.url:
            self._server.stop()
            self.url = ""


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
