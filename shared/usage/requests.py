"""The meter query request (contract `MeterQueryRequest`) parsed into a `ParsedQuery`: the only
module of usage that knows the wire names. Dimensions are checked against the meter queried."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from shared.api.problem import BadRequest, invalid_parameter
from shared.api.validation import Rfc3339, validate_model
from shared.core.timeutil import instant_problem
from shared.meters.models import Meter
from shared.usage.filters import validate_filter
from shared.usage.query import ParsedQuery
from shared.usage.windows import GRANULARITIES


class QueryFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dimensions: dict[str, dict[str, Any]] | None = Field(default=None, max_length=10)


class MeterQueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_: Rfc3339 | None = Field(default=None, alias="from")
    to: Rfc3339 | None = None
    granularity: str | None = None
    time_zone: str = "UTC"
    group_by_dimensions: list[str] = Field(default_factory=list, max_length=100)
    filters: QueryFilters | None = None


def _minute_aligned(name: str, value: datetime | None) -> None:
    if value is not None and (value.second or value.microsecond):
        raise BadRequest.field(name, "must fall on a whole minute (usage is kept at minute resolution)")


def parse_query(meter: Meter, body: Any) -> ParsedQuery:
    req = validate_model(MeterQueryRequest, body if body is not None else {})
    out_of_range = [
        invalid_parameter(name, reason)
        for name, value in (("from", req.from_), ("to", req.to))
        if value is not None and (reason := instant_problem(value))
    ]
    if out_of_range:
        first = out_of_range[0]
        raise BadRequest(f"Invalid [{first['field']}]: {first['reason']}", out_of_range)
    _minute_aligned("from", req.from_)
    _minute_aligned("to", req.to)
    if req.from_ and req.to and req.from_ >= req.to:
        raise BadRequest.field("to", "must be after from")
    if req.granularity is not None and req.granularity not in GRANULARITIES:
        raise BadRequest(
            "Invalid [granularity]",
            [
                {
                    "field": "granularity",
                    "rule": "enum",
                    "source": "body",
                    "reason": "must be one of " + ", ".join(GRANULARITIES),
                    "choices": list(GRANULARITIES),
                }
            ],
        )
    try:
        tz = ZoneInfo(req.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest.field("time_zone", f"unknown IANA time zone [{req.time_zone}]") from None
    known = set(meter.dimensions) | {"subject", "customer_id"}
    for i, name in enumerate(req.group_by_dimensions):
        if name not in known:
            raise BadRequest.field(
                f"group_by_dimensions[{i}]", f"[{name}] is not a dimension of meter [{meter.key}]"
            )
    filters: dict[str, dict[str, Any]] = {}
    subjects: list[str] | None = None
    customer_ids: list[str] | None = None
    for name, spec in ((req.filters.dimensions if req.filters else None) or {}).items():
        fname = f"filters.dimensions.{name}"
        if name not in known:
            raise BadRequest.field(fname, f"[{name}] is not a dimension of meter [{meter.key}]")
        validate_filter(spec, fname)
        if name in ("subject", "customer_id"):
            op = next(iter(spec))
            if op not in ("eq", "in"):
                raise BadRequest.field(fname, f"only eq and in are supported for {name}")
            values = [spec["eq"]] if op == "eq" else list(dict.fromkeys(spec["in"]))
            if name == "subject":
                subjects = values
            else:
                customer_ids = values
            continue
        filters[name] = spec
    return ParsedQuery(
        req.from_,
        req.to,
        req.granularity,
        tz,
        list(dict.fromkeys(req.group_by_dimensions)),
        filters,
        subjects,
        customer_ids,
    )
