"""Fixtures for the local-runtime tests: fake AWS credentials and a fast in-process moto.

One `mock_aws` per module with cached clients and a per-test backend reset costs a few ms per
test (platform notes §1.3d); modules that start the real moto server do not use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend

SERVICES = ("dynamodb", "kinesis", "s3", "sns", "sqs")


@pytest.fixture(autouse=True)
def _fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never reach real AWS, whatever the developer's shell has set.
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="module")
def _moto() -> Iterator[None]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        yield


@pytest.fixture(scope="module")
def _clients(_moto: None) -> dict[str, Any]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return {s: session.client(s) for s in SERVICES}


@pytest.fixture
def aws(_clients: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield _clients
    for service in SERVICES:
        get_backend(service).reset()
