"""A provisioned in-process moto stack for benchmarks, with a DynamoDB request counter."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import boto3
import orjson

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
# Benches drive the aggregate with bursts of ingestion-time-identical batches: usage is flushed after
# every batch (the conservative cost) so what they query is there. `bench/cost.py` prices the
# deployed write-behind instead (USAGE_FLUSH_SECONDS as deployed, at the deployed arrival rate).
os.environ.setdefault("USAGE_FLUSH_SECONDS", "0")

from local import moto_speedups
from local.http_front import build_proxy_event
from local.kinesis_poller import to_lambda_record
from local.provision import provision
from shared.auth.tokens import ensure_token
from shared.aws import clients

moto_speedups.apply()
TOKEN = "mlt_bench_admin"
WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READ_OPS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


class Bench:
    def __init__(self) -> None:
        session = boto3.session.Session(region_name="us-east-1")
        self.aws = {s: session.client(s) for s in ("dynamodb", "kinesis", "s3", "sns", "sqs")}
        self.env = provision(self.aws).env
        os.environ.update(self.env)
        # Process-wide factories hold the client they were built with: rebuild them on this one.
        from shared import bootstrap

        bootstrap.reset()
        ensure_token(TOKEN, "admin", "bench")
        self.calls: Counter[str] = Counter()
        self.items_written = 0
        clients.dynamodb().meta.events.register("before-parameter-build.dynamodb.*", self._count)
        self._iters: dict[str, str] = {}

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "BatchWriteItem":
            self.items_written += sum(len(v) for v in params.get("RequestItems", {}).values())
        elif model.name in WRITE_OPS:
            self.items_written += 1

    def reset_counts(self) -> None:
        self.calls.clear()
        self.items_written = 0

    def writes(self) -> int:
        return sum(n for op, n in self.calls.items() if op in WRITE_OPS)

    def api_event(self, method: str, path: str, body: Any, ctype: str = "application/json") -> dict[str, Any]:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        full = "/v3/openmeter" + path
        return build_proxy_event(
            method=method,
            raw_path=full,
            body=data,
            source_ip="127.0.0.1",
            headers=[("Content-Type", ctype), ("Authorization", f"Bearer {TOKEN}")],
            resource="/v3/openmeter/{proxy+}",
            path_parameters={"proxy": full[14:]},
        )

    def kinesis_batches(self, limit: int = 1000) -> list[dict[str, Any]]:
        kinesis = self.aws["kinesis"]
        name = self.env["EVENTS_STREAM"]
        arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        batches = []
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            sid = shard["ShardId"]
            it = (
                self._iters.get(sid)
                or kinesis.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType="TRIM_HORIZON")[
                    "ShardIterator"
                ]
            )
            while True:
                resp = kinesis.get_records(ShardIterator=it, Limit=limit)
                it = resp["NextShardIterator"]
                if not resp["Records"]:
                    break
                batches.append({"Records": [to_lambda_record(r, sid, arn) for r in resp["Records"]]})
            self._iters[sid] = it
        return batches
