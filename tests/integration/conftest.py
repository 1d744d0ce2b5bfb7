"""Integration fixtures: one in-process moto for the session, a fresh provisioned stack per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto import mock_aws
from moto.backends import get_backend

from local import moto_speedups
from tests.support.harness import SERVICES, Stack

moto_speedups.apply()

for _name in list(os.environ):
    if _name.startswith("AWS_ENDPOINT_URL") or _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        del os.environ[_name]
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="WARNING",
)


@pytest.fixture(scope="session")
def _moto() -> Iterator[None]:
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        yield


@pytest.fixture
def stack(_moto: None) -> Iterator[Stack]:
    yield Stack()
    for service in SERVICES:
        get_backend(service).reset()
