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

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.api.params import STRING_OPS, StringFilter, nested
from shared.api.problem import BadRequest, invalid_parameter
from shared.core.ids import is_ulid
from shared.core.timeutil import parse_rfc3339

ORDERS = ("time", "ingested_at", "stored_at")
STRING_FIELDS = ("id", "source", "subject", "type")
FILTER_FIELDS = (*STRING_FIELDS, "customer_id", *ORDERS)
CUSTOMER_OPS = ("eq", "oeq", "neq")
RANGE_OPS = ("eq", "gt", "gte", "lt", "lte")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
_SORT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z(#.*)?$", re.DOTALL)
_CURSOR_MAC = b"meterline/events/cursor/v1"  # integrity check against edited cursors, not a secret


def _enum_error(name: str, reason: str, choices: Sequence[str]) -> BadRequest:
    param = {**invalid_parameter(name, reason, "enum", "query"), "choices": list(choices)}
    return BadRequest(f"Invalid [{name}]: {reason}", [param])


def _bad(name: str, reason: str, rule: str = "invalid") -> BadRequest:
    return BadRequest.field(name, reason, rule, "query")


# -- cursor ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """A position in one listing order: `key` is an index sort key (or a day boundary).

    `key=None` (only with `page[before]`) means "from the far end": the `last` link.
    `inclusive` positions include the item at `key` (used for `previous`/`next` of empty pages).
    """

    key: str | None
    order: str
    desc: bool
    inclusive: bool = False

    def encode(self) -> str:
        payload = orjson.dumps(
            {"k": self.key, "o": self.order, "d": "desc" if self.desc else "asc", "i": self.inclusive}
        )
        mac = hashlib.blake2b(payload, key=_CURSOR_MAC, digest_size=8).digest()
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, name: str) -> Cursor:
        invalid = _bad(name, "is not a valid cursor; use the `next`/`previous` link of a response")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise invalid from None
        payload, mac = raw[:-8], raw[-8:]
        # Only the canonical encoding is ours: base64 ignores the spare bits of the last character.
        canonical = base64.urlsafe_b64encode(raw).decode().rstrip("=") == token
        if (
            not canonical
            or len(raw) <= 8
            or hashlib.blake2b(payload, key=_CURSOR_MAC, digest_size=8).digest() != mac
        ):
            raise invalid
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise invalid from None
        key = data.get("k") if isinstance(data, dict) else 0
        if (
            not isinstance(data, dict)
            or data.get("o") not in ORDERS
            or data.get("d") not in ("asc", "desc")
            or not isinstance(data.get("i"), bool)
            or not (key is None or (isinstance(key, str) and _SORT_KEY.match(key)))
        ):
            raise invalid
        return cls(key, data["o"], data["d"] == "desc", data["i"])


# -- filters --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeRange:
    """Bounds on one of the event's instants (`time`, `ingested_at`, `stored_at`)."""

    field: str
    lower: datetime | None = None
    lower_inclusive: bool = True
    upper: datetime | None = None
    upper_inclusive: bool = True

    def matches(self, value: datetime) -> bool:
        if self.lower is not None and (
            value < self.lower or (value == self.lower and not self.lower_inclusive)
        ):
            return False
        return not (
            self.upper is not None
            and (value > self.upper or (value == self.upper and not self.upper_inclusive))
        )

    @property
    def empty(self) -> bool:
        if self.lower is None or self.upper is None:
            return False
        return self.lower > self.upper or (
            self.lower == self.upper and not (self.lower_inclusive and self.upper_inclusive)
        )

    def tightened(self, op: str, value: datetime) -> TimeRange:
        lower, lower_inc, upper, upper_inc = (
            self.lower,
            self.lower_inclusive,
            self.upper,
            self.upper_inclusive,
        )
        if op in ("eq", "gt", "gte"):
            inc = op != "gt"
            if lower is None or value > lower or (value == lower and not inc):
                lower, lower_inc = value, inc
        if op in ("eq", "lt", "lte"):
            inc = op != "lt"
            if upper is None or value < upper or (value == upper and not inc):
                upper, upper_inc = value, inc
        return TimeRange(self.field, lower, lower_inc, upper, upper_inc)

    def index_span(self) -> tuple[datetime | None, datetime | None]:
        """Loose [lower, upper) bounds on the indexed instant (microseconds) for this range.

        Events stored by earlier releases show instants truncated to milliseconds while their
        index holds the microseconds (stored_at), so the span is widened to whole milliseconds;
        the exact test is `matches` on the shown value.
        """
        lower = self.lower.replace(microsecond=self.lower.microsecond // 1000 * 1000) if self.lower else None
        upper = None
        if self.upper is not None:
            upper = self.upper.replace(microsecond=self.upper.microsecond // 1000 * 1000)
            upper += timedelta(milliseconds=1)
        return lower, upper


@dataclass(frozen=True)
class CustomerFilter:
    op: str  # eq | oeq | neq
    ids: tuple[str, ...]


@dataclass(frozen=True)
class ListQuery:
    order: str = "time"
    desc: bool = True
    size: int = DEFAULT_PAGE_SIZE
    after: Cursor | None = None
    before: Cursor | None = None
    strings: tuple[StringFilter, ...] = ()
    customer: CustomerFilter | None = None
    ranges: dict[str, TimeRange] = field(default_factory=dict)
    # The request's query parameters, for building links that keep them.
    params: dict[str, str] = field(default_factory=dict)


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
