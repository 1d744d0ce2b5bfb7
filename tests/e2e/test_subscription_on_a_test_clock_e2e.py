"""Issue 10 end to end on the local stack (`python -m local` in a subprocess), over HTTP only: a customer
on a test clock subscribes to a plan whose trial phase and paid phase each carry a metered entitlement
template; events are ingested; the clock is advanced across the phase change and two more period ends;
the entitlement's usage resets at each period start and access follows the balance.

Times (d0 = midnight 40 days ago, so every event time is in the past for ingest's time check):
  plan: billing cadence P1W; trial P1W: tokens free, 100 per week; paid: tokens 0.01, 1,000 per week
  d0          clock starts; subscribe (anchor d0): trial entitlement, period [d0, d0+7d)
  (usage counts up to the customer's now, so the clock is moved past each event before it shows)
  d0+1h       30 tokens -> usage 30, balance 100 - 30 = 70
  d0+7d       phase change: paid entitlement, measured from d0+7d, period [d0+7d, d0+14d), usage 0
  d0+7d+2h    1,200 tokens -> usage 1,200, balance max(0, 1,000 - 1,200) = 0, hard limit: no access
  d0+14d      period end: usage 0, balance 1,000, access back
  d0+14d+2h   50 tokens -> usage 50, balance 950
  d0+21d      period end: usage 0, balance 1,000
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.e2e.client import http_client, iso

pytestmark = pytest.mark.e2e


def usage_card(amount: str | None, limit: int, feature_id: str) -> dict[str, Any]:
    return {
        "key": "tokens",
        "name": "Tokens",
        "feature": {"id": feature_id},
        "billing_cadence": "P1W",
        "price": {"type": "unit", "amount": amount} if amount else {"type": "free"},
        "entitlement": {"type": "metered", "limit": limit, "usage_period": "P1W", "is_soft_limit": False},
    }


def test_a_clock_bound_subscription_changes_phase_and_resets_on_the_clocks_time(
    local_stack: dict[str, str],
) -> None:
    base = local_stack["METERLINE_URL"] + "/v3/openmeter"
    h = {"Authorization": f"Bearer {local_stack['METERLINE_TOKEN']}", "Content-Type": "application/json"}

    call, eventually, advance = http_client(local_stack)

    def ingest(n: int, at: datetime, tokens: int) -> None:
        event = {
            "specversion": "1.0",
            "id": f"e2e-{n}",
            "source": "e2e",
            "type": "prompt",
            "subject": "acme-a",
            "time": iso(at),
            "data": {"tokens": tokens},
        }
        resp = requests.post(
            f"{base}/events",
            headers={**h, "Content-Type": "application/cloudevents+json"},
            json=event,
            timeout=30,
        )
        assert resp.status_code == 202, resp.text

    d0 = (datetime.now(UTC) - timedelta(days=40)).replace(hour=0, minute=0, second=0, microsecond=0)
    meter = call(
        "POST",
        "/meters",
        {
            "key": "tokens",
            "name": "Tokens",
            "aggregation": "sum",
            "event_type": "prompt",
            "value_property": "$.tokens",
        },
        201,
    )
    feature = call(
        "POST", "/features", {"key": "tokens", "name": "Tokens", "meter": {"id": meter["id"]}}, 201
    )
    plan = call(
        "POST",
        "/plans",
        {
            "key": "e2e",
            "name": "E2E",
            "currency": "USD",
            "billing_cadence": "P1W",
            "phases": [
                {
                    "key": "trial",
                    "name": "Trial",
                    "duration": "P1W",
                    "rate_cards": [usage_card(None, 100, feature["id"])],
                },
                {"key": "paid", "name": "Paid", "rate_cards": [usage_card("0.01", 1000, feature["id"])]},
            ],
        },
        201,
    )
    call("POST", f"/plans/{plan['id']}/publish")  # published now, in wall time

    clock = call("POST", "/test-clocks", {"frozen_time": iso(d0)}, 201)
    customer = call(
        "POST",
        "/customers",
        {
            "key": "acme",
            "name": "Acme",
            "usage_attribution": {"subject_keys": ["acme-a"]},
            "test_clock_id": clock["id"],
        },
        201,
    )
    cid = customer["id"]
    sub = call("POST", "/subscriptions", {"customer": {"id": cid}, "plan": {"key": "e2e"}}, 201)
    assert sub["billing_anchor"] == iso(d0), sub  # the customer's now is its clock's time
    value_path = f"/customers/{cid}/entitlements/tokens/value"

    # Usage counts up to the customer's now: the clock moves past an event before it shows.
    advance(clock["id"], d0 + timedelta(hours=2))
    ingest(1, d0 + timedelta(hours=1), 30)
    v = eventually(value_path, lambda b: Decimal(b["usage"]) == 30)
    assert Decimal(v["balance"]) == 70 and v["has_access"] is True  # 100 - 30
    assert v["current_usage_period"] == {"from": iso(d0), "to": iso(d0 + timedelta(days=7))}

    advance(clock["id"], d0 + timedelta(days=7, hours=3))  # across the phase change
    v = call("GET", value_path)
    assert v["current_usage_period"]["from"] == iso(d0 + timedelta(days=7))
    assert (Decimal(v["usage"]), Decimal(v["balance"])) == (0, 1000)  # the paid phase's allowance

    ingest(2, d0 + timedelta(days=7, hours=2), 1200)
    v = eventually(value_path, lambda b: Decimal(b["usage"]) == 1200)
    assert Decimal(v["balance"]) == 0 and v["has_access"] is False  # 1,000 - 1,200, hard limit

    advance(clock["id"], d0 + timedelta(days=14, hours=1))  # first period end of the paid phase
    v = call("GET", value_path)
    assert v["current_usage_period"]["from"] == iso(d0 + timedelta(days=14))
    assert (Decimal(v["usage"]), Decimal(v["balance"]), v["has_access"]) == (0, 1000, True)

    advance(clock["id"], d0 + timedelta(days=14, hours=3))
    ingest(3, d0 + timedelta(days=14, hours=2), 50)
    v = eventually(value_path, lambda b: Decimal(b["usage"]) == 50)
    assert Decimal(v["balance"]) == 950  # 1,000 - 50

    advance(clock["id"], d0 + timedelta(days=21, hours=1))  # second period end
    v = call("GET", value_path)
    assert v["current_usage_period"]["from"] == iso(d0 + timedelta(days=21))
    assert (Decimal(v["usage"]), Decimal(v["balance"]), v["has_access"]) == (0, 1000, True)
