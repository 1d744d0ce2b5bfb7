"""`ingest-metering-events` responses against the contract (202, 400, 401, 403)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import conftest as integration
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
# The integration suite's fresh-stack fixtures (tests/contract has no conftest of its own).
_moto = integration._moto
stack = integration.stack
OP = "ingest-metering-events"


def event(**overrides: Any) -> dict[str, Any]:
    body = {"id": "1", "source": "svc", "type": "prompt", "subject": "c1", "data": {"tokens": 1}}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("payload", "ctype"),
    [
        (event(), "application/cloudevents+json"),
        ([event(), event(id="2")], "application/cloudevents-batch+json"),
        (event(), "application/json"),
        ([event()], "application/json; charset=utf-8"),
    ],
)
def test_accepted(stack: Stack, payload: Any, ctype: str) -> None:
    resp = stack.request("POST", "/events", payload, content_type=ctype, token=INGESTER)
    assert resp.status == 202, resp
    contract.validate(resp, OP)


def test_bad_requests(stack: Stack) -> None:
    cases: list[tuple[Any, str]] = [
        (event(subject=None), "application/cloudevents+json"),
        (event(id=""), "application/cloudevents+json"),
        (event(data="text"), "application/cloudevents+json"),
        (event(datacontenttype="text/plain"), "application/cloudevents+json"),
        (event(time="noon"), "application/cloudevents+json"),
        (event(colour="blue"), "application/cloudevents+json"),
        (event(specversion="2.0", dataschema="::"), "application/cloudevents+json"),
        ([event(), event(id=None, source="", type=5)], "application/cloudevents-batch+json"),
        ([], "application/cloudevents-batch+json"),
        ([event()], "application/cloudevents+json"),
        (event(), "application/cloudevents-batch+json"),
        (b"{not json", "application/json"),
        (b"17", "application/json"),
    ]
    for payload, ctype in cases:
        resp = stack.request("POST", "/events", payload, content_type=ctype)
        assert resp.status == 400, (payload, resp)
        contract.validate(resp, OP)
    assert stack.pending_batches() == []


def test_unauthorized_and_forbidden(stack: Stack) -> None:
    for token, status in ((None, 401), ("mlt_wrong", 401), (VIEWER, 403)):
        resp = stack.request(
            "POST", "/events", event(), content_type="application/cloudevents+json", token=token
        )
        assert resp.status == status, resp
        contract.validate(resp, OP)
