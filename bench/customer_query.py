"""Items read by one customer's month at PT1H: a customer with many subjects, usage in every hour.

Like cost.py, it imports nothing from `bench` but `bench.harness.Bench`, so `python -m bench query`
runs it against the baseline commit too and prints both. Usage is aggregated for `days` days (every
subject, every hour: the worst case for hour-level items) and the whole month is queried; the items
read for a month of such usage scale by 31 / days.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any


def measure(subjects: int, days: int) -> dict[str, Any]:
    import orjson

    from bench.harness import Bench
    from functions.aggregate import handler as agg
    from functions.api.handler import lambda_handler as api
    from functions.ingest.handler import lambda_handler as ingest
    from shared.meters.repository import MeterRepository
    from shared.settings import get_settings
    from shared.usage.query import UsageQueryService
    from shared.usage.requests import parse_query

    b = Bench()
    spec = {
        "key": "llm_tokens",
        "name": "Tokens",
        "aggregation": "sum",
        "event_type": "llm_request",
        "value_property": "$.tokens",
    }
    assert api(b.api_event("POST", "/meters", spec), None)["statusCode"] == 201
    start = datetime(2026, 10, 1, tzinfo=UTC)
    names = [f"key-{i:03d}" for i in range(subjects)]
    events = [
        {
            "specversion": "1.0",
            "id": f"q-{s}-{h}",
            "source": "gateway",
            "type": "llm_request",
            "subject": subject,
            "time": (start + timedelta(hours=h, minutes=s % 60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {"tokens": 10},
        }
        for h in range(24 * days)
        for s, subject in enumerate(names)
    ]
    for i in range(0, len(events), 1000):
        body = orjson.dumps(events[i : i + 1000])
        resp = ingest(b.api_event("POST", "/events", body, "application/cloudevents-batch+json"), None)
        assert resp["statusCode"] == 202, resp
    for batch in b.kinesis_batches():
        agg.lambda_handler(batch, None)
    meter = next(m for m in MeterRepository(get_settings().config_table).list_all() if m.key == "llm_tokens")
    svc = UsageQueryService(b.aws["dynamodb"], get_settings().usage_table)
    month = {
        "from": "2026-10-01T00:00:00Z",
        "to": "2026-11-01T00:00:00Z",
        "granularity": "PT1H",
        "filters": {"dimensions": {"subject": {"in": names}}},
    }
    t0 = time.perf_counter()
    result = svc.run(meter, parse_query(meter, month))
    seconds = time.perf_counter() - t0
    assert len(result.rows) == 24 * days and all(r["value"] == str(10 * subjects) for r in result.rows)
    return {
        "subjects": subjects,
        "days": days,
        "items_read": result.items_read,
        "queries": result.queries,
        "seconds": round(seconds, 2),
        "items_read_month_of_usage": result.items_read * 31 // days,
    }


def main() -> None:
    """`python bench/customer_query.py <subjects> <days>`: one JSON line on stdout."""
    from moto import mock_aws

    subjects, days = int(sys.argv[1]), int(sys.argv[2])
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        print(json.dumps(measure(subjects, days)))


if __name__ == "__main__":
    main()
