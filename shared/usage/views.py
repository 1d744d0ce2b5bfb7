"""A meter query's result -> the contract's JSON (`MeterQueryResult`) or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from shared.core.timeutil import format_rfc3339
from shared.usage.query import QueryResult


def to_api(result: QueryResult) -> dict[str, Any]:
    body: dict[str, Any] = {"data": result.rows}
    if result.start is not None:
        body["from"] = format_rfc3339(result.start)
    if result.end is not None:
        body["to"] = format_rfc3339(result.end)
    return body


def to_csv(result: QueryResult) -> str:
    dims = [d for d in result.group_by if d not in ("subject", "customer_id")]
    header = ["from", "to"]
    if "subject" in result.group_by:
        header.append("subject")
    with_customer = "customer_id" in result.group_by
    if with_customer:
        header += ["customer_id", "customer_key", "customer_name"]
    header += [*dims, "value"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in result.rows:
        d = row["dimensions"]
        line = [row["from"], row["to"]]
        if "subject" in result.group_by:
            line.append(d.get("subject", ""))
        if with_customer:
            cid = d.get("customer_id", "")
            ref = result.customers.get(cid)
            line += [cid, (ref.key or "") if ref else "", ref.name if ref else ""]
        line += [d.get(name, "") for name in dims]
        line.append(row["value"])
        writer.writerow(line)
    return out.getvalue()
