"""LLM cost benchmark against moto, in one process: `python -m bench.llmcost`.

A month of LLM usage for 100 customers x 5 models (input and output tokens, twice a day each),
ingested through the real handlers; the installed genai-prices catalog loaded into DynamoDB; then
`POST /features/{id}/cost/query` for the month at P1D grouped by customer and model, through the
cost service: DynamoDB requests by operation, usage items read, milliseconds. Run again with an
override effective mid-month, which splits the month at its start (one more usage read per piece).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from moto import mock_aws

from bench.harness import Bench

MODELS = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-1.5-pro"),
    ("mistral", "mistral-large-latest"),
]
MONTH = {"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "granularity": "P1D"}


def month_of_usage(customers: int) -> list[dict[str, Any]]:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    out = []
    for day in range(31):
        for c in range(customers):
            for m, (provider, model) in enumerate(MODELS):
                for hour, kind, tokens in ((9, "input", 1200 + c), (15, "output", 300 + m)):
                    t = start + timedelta(days=day, hours=hour, minutes=(c * 7 + m) % 60)
                    out.append(
                        {
                            "specversion": "1.0",
                            "id": f"{day}-{c}-{m}-{kind}",
                            "source": "gateway",
                            "type": "llm_tokens",
                            "subject": f"customer-{c:03d}",
                            "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "data": {"tokens": tokens, "provider": provider, "model": model, "type": kind},
                        }
                    )
    return out


def api(b: Bench, method: str, path: str, body: Any) -> Any:
    from functions.api.handler import lambda_handler

    resp = lambda_handler(b.api_event(method, path, body), None)
    assert resp["statusCode"] in (200, 201), resp
    return orjson.loads(resp["body"])


def run(customers: int) -> None:
    from functions.aggregate import handler as agg
    from functions.ingest.handler import lambda_handler as ingest
    from shared import bootstrap as wiring

    b = Bench()
    agg.aggregator.cache_clear()
    meter = api(
        b,
        "POST",
        "/meters",
        {
            "key": "llm_tokens",
            "name": "LLM tokens",
            "aggregation": "sum",
            "event_type": "llm_tokens",
            "value_property": "$.tokens",
            "dimensions": {"provider": "$.provider", "model": "$.model", "type": "$.type"},
        },
    )
    unit_cost = {"type": "llm", "provider_property": "provider", "model_property": "model"}
    unit_cost["token_type_property"] = "type"
    feature = api(
        b,
        "POST",
        "/features",
        {"key": "llm", "name": "LLM", "meter": {"id": meter["id"]}, "unit_cost": unit_cost},
    )

    b.reset_counts()
    t0 = time.perf_counter()
    report = wiring.llm_prices().refresh()
    ms = (time.perf_counter() - t0) * 1000
    print(
        f"catalog load ({wiring.llm_catalog().version}): {report.models} models,"
        f" {report.added} price versions,"
        f" {b.writes()} write requests ({b.items_written} items), {ms:.0f} ms"
    )
    b.reset_counts()
    report = wiring.llm_prices().refresh()
    print(f"daily refresh, nothing changed: {report.added} versions added, {dict(b.calls)} requests")

    events = month_of_usage(customers)
    for i in range(0, len(events), 1000):
        body = orjson.dumps(events[i : i + 1000])
        resp = ingest(b.api_event("POST", "/events", body, "application/cloudevents-batch+json"), None)
        assert resp["statusCode"] == 202
    for batch in b.kinesis_batches():
        agg.lambda_handler(batch, None)
    print(
        f"usage: {len(events)} events, {customers} customers x {len(MODELS)} models x 2 token types,"
        " October 2026"
    )

    body = {**MONTH, "group_by_dimensions": ["subject", "model"]}
    for label in ("system prices", "override from 15 Oct"):
        if label.startswith("override"):
            api(
                b,
                "POST",
                "/llm-cost/overrides",
                {
                    "provider": "openai",
                    "model_id": "gpt-4o",
                    "pricing": {"input_per_token": "0.000002", "output_per_token": "0.000008"},
                    "currency": "USD",
                    "effective_from": "2026-10-15T00:00:00Z",
                },
            )
        b.reset_counts()
        t0 = time.perf_counter()
        result = wiring.llm_costs().query(feature["id"], body)
        ms = (time.perf_counter() - t0) * 1000
        total = sum((r.cost for r in result.rows if r.cost is not None), Decimal(0))
        unpriced = sum(1 for r in result.rows if r.cost is None)
        print(
            f"  cost query P1D, {label:22s}: {len(result.rows)} rows, {sum(b.calls.values())} requests"
            f" {dict(sorted(b.calls.items()))}, {result.items_read} usage items read, {ms:.0f} ms;"
            f" total ${total} ({unpriced} rows unpriced)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llmcost")
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args()
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        run(args.customers)


if __name__ == "__main__":
    main()
