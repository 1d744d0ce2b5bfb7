"""Query parameters of `GET /events` (contract `list-metering-events`): page, cursor, filter, sort.

Everything is validated up front; a bad parameter is a 400 naming it (`filter[foo]`, `page[after]`).

- `page[size]` 1..100 (default 100), `page[after]` / `page[before]` opaque cursors (not both).
- `filter[id|source|subject|type][eq|oeq|neq|contains|ocontains]`, one operator each (a bare
  `filter[subject]=x` means `eq`).
- `filter[customer_id]=<ULID>` or `[eq|oeq|neq]`.
- `filter[time|ingested_at|stored_at]=<RFC 3339>` (equals) or `[eq|gt|gte|lt|lte]`; several operators
  on one field are ANDed, so `[gte]` + `[lt]` is a range.
- `sort=time|ingested_at|stored_at` with an optional `asc`/`desc` suffix; no suffix = descending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.api.params import STRING_OPS, StringFilter, nested
from shared.api.problem import BadRequest, invalid_parameter
from shared.core.ids import is_ulid
from shared.core.timeutil import parse_rfc3339
from shared.events.models import (
    DEFAULT_PAGE_SIZE,
    ORDERS,
    Cursor,
    CustomerFilter,
    ListQuery,
    TimeRange,
)

STRING_FIELDS = ("id", "source", "subject", "type")
FILTER_FIELDS = (*STRING_FIELDS, "customer_id", *ORDERS)
CUSTOMER_OPS = ("eq", "oeq", "neq")
RANGE_OPS = ("eq", "gt", "gte", "lt", "lte")
MAX_PAGE_SIZE = 100


def _enum_error(name: str, reason: str, choices: Sequence[str]) -> BadRequest:
    param = {**invalid_parameter(name, reason, "enum", "query"), "choices": list(choices)}
    return BadRequest(f"Invalid [{name}]: {reason}", [param])


def _bad(name: str, reason: str, rule: str = "invalid") -> BadRequest:
    return BadRequest.field(name, reason, rule, "query")


def parse_sort(value: str | None) -> tuple[str, bool]:
    if value is None or not value.strip():
        return "time", True
    parts = [p for p in value.split(",") if p.strip()]
    if len(parts) != 1:
        raise _bad("sort", "events are sorted by one attribute only")
    words = parts[0].split()
    if words[0] not in ORDERS:
        raise _enum_error(
            "sort", f"unknown sort attribute [{words[0]}]; supported: {', '.join(ORDERS)}", ORDERS
        )
    if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        raise _bad("sort", f"invalid sort order in [{parts[0].strip()}]; use asc or desc")
    return words[0], len(words) == 1 or words[1].lower() == "desc"


def _string_filter(name: str, spec: Any) -> StringFilter:
    if isinstance(spec, str):
        return StringFilter(name, "eq", spec)
    if not spec:
        raise _bad(f"filter[{name}]", "needs an operator")
    if len(spec) != 1:
        raise _bad(f"filter[{name}]", f"use exactly one operator of {', '.join(STRING_OPS)}")
    op, value = next(iter(spec.items()))
    if op not in STRING_OPS:
        raise _enum_error(
            f"filter[{name}][{op}]", f"unknown operator; use one of {', '.join(STRING_OPS)}", STRING_OPS
        )
    if not isinstance(value, str):
        raise _bad(f"filter[{name}][{op}]", "must be a string", "is_string")
    return StringFilter(name, op, value)


def _customer_filter(spec: Any) -> CustomerFilter:
    if isinstance(spec, str):
        spec = {"eq": spec}
    if not spec:
        raise _bad("filter[customer_id]", "needs an operator")
    if len(spec) != 1:
        raise _bad("filter[customer_id]", f"use exactly one operator of {', '.join(CUSTOMER_OPS)}")
    op, value = next(iter(spec.items()))
    name = f"filter[customer_id][{op}]"
    if op not in CUSTOMER_OPS:
        raise _enum_error(name, f"unknown operator; use one of {', '.join(CUSTOMER_OPS)}", CUSTOMER_OPS)
    if not isinstance(value, str):
        raise _bad(name, "must be a string", "is_string")
    ids = tuple(v.strip() for v in value.split(",")) if op == "oeq" else (value,)
    for customer_id in ids:
        if not is_ulid(customer_id):
            raise _bad(name, f"[{customer_id}] is not a ULID", "matches_regex")
    return CustomerFilter(op, ids)


def _time_range(name: str, spec: Any) -> TimeRange:
    if isinstance(spec, str):
        spec = {"eq": spec}
    if not spec:
        raise _bad(f"filter[{name}]", "needs an operator")
    result = TimeRange(name)
    for op, value in spec.items():
        param = f"filter[{name}][{op}]"
        if op not in RANGE_OPS:
            raise _enum_error(param, f"unknown operator; use one of {', '.join(RANGE_OPS)}", RANGE_OPS)
        try:
            instant = parse_rfc3339(value)
        except ValueError as exc:
            raise _bad(param, str(exc), "is_date_time") from None
        result = result.tightened(op, instant)
    return result


def _page(params: Mapping[str, str], order: str, desc: bool) -> tuple[int, Cursor | None, Cursor | None]:
    page = nested(dict(params), "page")
    for name, value in page.items():
        if name not in ("size", "after", "before") or not isinstance(value, str):
            label = f"page[{name}]" if name else "page"
            raise _bad(
                label,
                "is not a page parameter; use page[size], page[after] or page[before]",
                "unknown_property",
            )
    size = DEFAULT_PAGE_SIZE
    if "size" in page:
        try:
            size = int(page["size"])
        except ValueError:
            raise _bad("page[size]", "must be an integer", "is_integer") from None
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise _bad("page[size]", f"must be between 1 and {MAX_PAGE_SIZE}")
    if "after" in page and "before" in page:
        reason = "use page[after] or page[before], not both"
        param = {**invalid_parameter("page[before]", reason, "dependent_fields", "query")}
        raise BadRequest(f"Invalid [page[before]]: {reason}", [{**param, "dependents": ["page[after]"]}])
    cursors: dict[str, Cursor] = {}
    for name in ("after", "before"):
        if name not in page:
            continue
        cursor = Cursor.decode(page[name], f"page[{name}]")
        if (cursor.order, cursor.desc) != (order, desc):
            wanted = f"{cursor.order} {'desc' if cursor.desc else 'asc'}"
            raise _bad(
                f"page[{name}]", f"the cursor belongs to sort [{wanted}]; repeat that sort or start over"
            )
        if cursor.key is None and name == "after":
            raise _bad("page[after]", "is not a valid cursor; use the `next`/`previous` link of a response")
        cursors[name] = cursor
    return size, cursors.get("after"), cursors.get("before")


def parse_list_query(params: Mapping[str, str] | None) -> ListQuery:
    params = dict(params or {})
    order, desc = parse_sort(params.get("sort"))
    size, after, before = _page(params, order, desc)
    strings: list[StringFilter] = []
    customer: CustomerFilter | None = None
    ranges: dict[str, TimeRange] = {}
    for name, spec in nested(params, "filter").items():
        if name not in FILTER_FIELDS:
            label = f"filter[{name}]" if name else "filter"
            raise _bad(label, f"unknown filter; supported: {', '.join(FILTER_FIELDS)}", "unknown_property")
        if isinstance(spec, dict) and any(isinstance(v, dict) for v in spec.values()):
            raise _bad(f"filter[{name}]", "is nested too deeply; use filter[field][operator]=value")
        if name in STRING_FIELDS:
            strings.append(_string_filter(name, spec))
        elif name == "customer_id":
            customer = _customer_filter(spec)
        else:
            ranges[name] = _time_range(name, spec)
    return ListQuery(order, desc, size, after, before, tuple(strings), customer, ranges, params)
