"""An in-process stack for integration tests: moto, the real handlers, and a synchronous drain.

Requests go through the same API Gateway proxy events the local front builds; the Kinesis side
is drained shard by shard into the aggregate handler in Lambda's record shape.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
import orjson

from functions.aggregate import handler as aggregate_handler
from functions.api import handler as api_handler
from functions.ingest import handler as ingest_handler
from local.http_front import build_proxy_event
from local.kinesis_poller import to_lambda_record
from local.persistence import dump_backends, load_backends
from local.provision import Provisioned, provision
from shared import bootstrap
from shared.auth.tokens import ensure_token

SERVICES = ("dynamodb", "kinesis", "s3", "sns", "sqs")
ADMIN = "mlt_test_admin_token"
VIEWER = "mlt_test_viewer_token"
INGESTER = "mlt_test_ingest_token"


class Response:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.status = int(raw["statusCode"])
        merged = {k: v[-1] for k, v in (raw.get("multiValueHeaders") or {}).items() if v}
        merged.update(raw.get("headers") or {})
        self.headers = {k.lower(): v for k, v in merged.items()}
        self.text = raw.get("body") or ""

    def json(self) -> Any:
        return orjson.loads(self.text)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.text[:300]}>"


_CLIENTS: dict[str, Any] = {}


def _clients() -> dict[str, Any]:
    # Creating botocore clients costs ~100 ms each; moto's backends reset under them between tests.
    if not _CLIENTS:
        session = boto3.session.Session(region_name="us-east-1")
        _CLIENTS.update({s: session.client(s) for s in SERVICES})
    return _CLIENTS


# moto's backends as they stand right after the first stack of this process was provisioned and its
# tokens issued, pickled (local/persistence.py's snapshot format), with what provisioning returned.
_FRESH: tuple[bytes, Provisioned] | None = None


class Stack:
    """A freshly provisioned stack: the tables, stream, buckets, topic and DLQ, and the three tokens.

    The first stack of a process provisions through the AWS APIs (local/provision.py, ~25 calls) and
    snapshots moto's backends; every later one loads that snapshot in place of the live backends
    (a few ms instead of ~0.2 s). Loading replaces every resource of SERVICES, so a test sees exactly
    what a fresh provisioning would leave, and nothing an earlier test wrote or created.
    """

    def __init__(self) -> None:
        global _FRESH
        self.clients = _clients()
        if _FRESH is None:
            self.provisioned: Provisioned = provision(self.clients)
            os.environ.update(self.provisioned.env)
            bootstrap.reset()  # settings, clients and services follow the new environment
            ensure_token(ADMIN, "admin", "test-admin")
            ensure_token(VIEWER, "viewer", "test-viewer")
            ensure_token(INGESTER, "ingest", "test-ingest")
            _FRESH = (dump_backends(), self.provisioned)
        else:
            blob, self.provisioned = _FRESH
            load_backends(blob)
            os.environ.update(self.provisioned.env)
            bootstrap.reset()  # services built by an earlier test (and their caches) are dropped
        self._iterators: dict[str, str] = {}

    # -- HTTP ------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = ADMIN,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Response:
        raw = body if isinstance(body, bytes | str) or body is None else orjson.dumps(body)
        data = raw.encode() if isinstance(raw, str) else (raw or b"")
        hdrs = [("Content-Type", content_type)] if data else []
        if token:
            hdrs.append(("Authorization", f"Bearer {token}"))
        hdrs += list((headers or {}).items())
        full = "/v3/openmeter" + path
        ingest = method == "POST" and full.split("?")[0] == "/v3/openmeter/events"
        event = build_proxy_event(
            method=method,
            raw_path=full,
            headers=hdrs,
            body=data,
            source_ip="127.0.0.1",
            resource="/v3/openmeter/events" if ingest else "/v3/openmeter/{proxy+}",
            path_parameters=None if ingest else {"proxy": full[len("/v3/openmeter/") :]},
        )
        handler = ingest_handler.lambda_handler if ingest else api_handler.lambda_handler
        return Response(handler(event, None))

    def ingest(self, events: list[dict[str, Any]] | dict[str, Any], token: str = ADMIN) -> Response:
        ctype = (
            "application/cloudevents-batch+json"
            if isinstance(events, list)
            else "application/cloudevents+json"
        )
        return self.request("POST", "/events", events, token=token, content_type=ctype)

    # -- stream ----------------------------------------------------------------------------------
    def shard_ids(self) -> list[str]:
        kinesis = self.clients["kinesis"]
        return [s["ShardId"] for s in kinesis.list_shards(StreamName=self.provisioned.stream_name)["Shards"]]

    def read_new(self, shard_id: str) -> list[dict[str, Any]]:
        kinesis = self.clients["kinesis"]
        it = (
            self._iterators.get(shard_id)
            or kinesis.get_shard_iterator(
                StreamName=self.provisioned.stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )
        resp = kinesis.get_records(ShardIterator=it, Limit=10000)
        self._iterators[shard_id] = resp["NextShardIterator"]
        return [to_lambda_record(r, shard_id, self.provisioned.stream_arn) for r in resp["Records"]]

    def pending_batches(self) -> list[dict[str, Any]]:
        """Everything new in the stream, one Lambda-shaped event per shard."""
        return [{"Records": recs} for shard in self.shard_ids() if (recs := self.read_new(shard))]

    def drain(self, handler: Callable[[dict[str, Any], Any], Any] | None = None) -> int:
        handler = handler or aggregate_handler.lambda_handler
        n = 0
        for batch in self.pending_batches():
            resp = handler(batch, None)
            assert not (resp or {}).get("batchItemFailures"), resp
            n += len(batch["Records"])
        return n
