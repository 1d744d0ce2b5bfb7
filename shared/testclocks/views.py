"""Test clocks -> the API's JSON (v3 style: snake_case, RFC 3339; Stripe's field names)."""

from __future__ import annotations

from typing import Any

from shared.api.params import Page
from shared.core.listing import Listed
from shared.core.timeutil import format_rfc3339
from shared.testclocks.models import ClockStatus, TestClock


def clock(c: TestClock) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": c.id,
        "frozen_time": format_rfc3339(c.frozen_time),
        "status": c.status.value,
        "customer_count": c.customer_count,
        "created_at": format_rfc3339(c.created_at),
        "updated_at": format_rfc3339(c.updated_at),
    }
    if c.name is not None:
        body["name"] = c.name
    if c.status is ClockStatus.ADVANCING and c.target_frozen_time is not None:
        body["status_details"] = {"advancing": {"target_frozen_time": format_rfc3339(c.target_frozen_time)}}
    return body


def page(page: Page, listed: Listed[TestClock]) -> dict[str, Any]:
    return page.response([clock(c) for c in listed.items], listed.total)
