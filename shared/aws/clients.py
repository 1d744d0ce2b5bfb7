"""AWS clients, created once per process (per Lambda container).

Endpoints come from botocore's own AWS_ENDPOINT_URL handling, so the same code talks to AWS
or to the local moto server. Clients are botocore's, from one botocore session: boto3 adds
nothing this code uses (resources, S3 transfers) and its import loads s3transfer, ~20% of the
SDK's import time on every cold start.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import botocore.loaders
import botocore.session
from botocore.config import Config

_lock = threading.Lock()
_CONFIG = Config(retries={"max_attempts": 5, "mode": "adaptive"}, max_pool_connections=32)
# S3 calls are SigV4 anyway; this makes presigned URLs SigV4 too (botocore otherwise presigns with
# the legacy SigV2, which regions opened since 2014 refuse).
_SERVICE_CONFIG = {"s3": _CONFIG.merge(Config(signature_version="s3v4"))}


@cache
def _loader(data_path: str | None) -> Any:
    # botocore's bundled JSON (service models, endpoints, paginators): read-only files that do not
    # depend on endpoint or credentials, so they outlive `reset_clients` (parsing them again costs
    # ~0.1 s of CPU per service, paid on every reset: once per test in the integration suite).
    return botocore.loaders.create_loader(data_path)


@cache
def _session() -> botocore.session.Session:
    # One session: its loaded service models and endpoint data are shared by every client.
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader(session.get_config_variable("data_path")))
    return session


@cache
def _client(service: str) -> Any:
    with _lock:  # creating clients from one botocore session is not thread-safe
        return _session().create_client(service, config=_SERVICE_CONFIG.get(service, _CONFIG))


def dynamodb() -> Any:
    return _client("dynamodb")


def kinesis() -> Any:
    return _client("kinesis")


def s3() -> Any:
    return _client("s3")


def sns() -> Any:
    return _client("sns")


def ssm() -> Any:
    return _client("ssm")


def reset_clients() -> None:
    """Forget cached clients and their session (tests switch endpoints and credentials between runs).
    botocore's parsed data files are kept (`_loader`)."""
    _client.cache_clear()
    _session.cache_clear()
