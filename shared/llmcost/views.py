"""Domain -> contract JSON (`LLMCostPrice`, `PricePagePaginatedResponse`, `FeatureCostQueryResult`), CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from shared.api.params import Page
from shared.core.decimals import wire
from shared.core.timeutil import format_rfc3339
from shared.llmcost.models import TOKEN_FIELDS, CostResult, CostRow, PriceVersion


def price(v: PriceVersion) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": v.id,
        "provider": {"id": v.provider_id, "name": v.provider_name},
        "model": {"id": v.model_id, "name": v.model_name},
        "pricing": {
            f"{name}_per_token": wire(value)
            for name in TOKEN_FIELDS
            if (value := getattr(v.pricing, name)) is not None
        },
        "currency": v.currency,
        "source": v.source.value,
        "effective_from": format_rfc3339(v.effective_from),
        "created_at": format_rfc3339(v.created_at),
        "updated_at": format_rfc3339(v.updated_at),
    }
    if v.effective_to is not None:
        body["effective_to"] = format_rfc3339(v.effective_to)
    return body


def price_page(page: Page, items: list[PriceVersion], total: int) -> dict[str, Any]:
    return page.response([price(v) for v in items], total)


def _row(r: CostRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "usage": wire(r.usage),
        "cost": wire(r.cost) if r.cost is not None else None,
        "currency": r.currency,
        "from": format_rfc3339(r.start),
        "to": format_rfc3339(r.end),
        "dimensions": r.dimensions,
    }
    if r.cost is None:
        body["detail"] = r.detail or "no price"
    return body


def cost_result(result: CostResult) -> dict[str, Any]:
    body: dict[str, Any] = {"data": [_row(r) for r in result.rows]}
    if result.start is not None:
        body["from"] = format_rfc3339(result.start)
    if result.end is not None:
        body["to"] = format_rfc3339(result.end)
    return body


def cost_csv(result: CostResult) -> str:
    """The meter query's CSV columns, with usage, cost, currency and detail in place of value."""
    dims = [d for d in result.group_by if d not in ("subject", "customer_id")]
    with_subject = "subject" in result.group_by
    with_customer = "customer_id" in result.group_by
    header = ["from", "to"]
    if with_subject:
        header.append("subject")
    if with_customer:
        header += ["customer_id", "customer_key", "customer_name"]
    header += [*dims, "usage", "cost", "currency", "detail"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in result.rows:
        d = r.dimensions
        line = [format_rfc3339(r.start), format_rfc3339(r.end)]
        if with_subject:
            line.append(d.get("subject", ""))
        if with_customer:
            cid = d.get("customer_id", "")
            key, name = result.customers.get(cid, (None, ""))
            line += [cid, key or "", name]
        line += [d.get(name, "") for name in dims]
        line += [wire(r.usage), wire(r.cost) if r.cost is not None else "", r.currency, r.detail or ""]
        writer.writerow(line)
    return out.getvalue()
