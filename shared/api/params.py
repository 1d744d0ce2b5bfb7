"""Query parameters in the contract's style: `page[size]`, `page[number]`, `filter[f][op]`, `sort`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.api.problem import BadRequest, invalid_parameter
from shared.core.ids import is_ulid
from shared.core.listing import StringFilter, sort_items

__all__ = ["Page", "StringFilter", "nested", "page_params", "sort_items", "string_filters", "ulid_filter"]

T = TypeVar("T")
_BRACKETS = re.compile(r"^(\w+)((?:\[[^\]]*\])*)$")
STRING_OPS = ("eq", "oeq", "neq", "contains", "ocontains")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def nested(params: dict[str, str] | None, root: str) -> dict[str, Any]:
    """`filter[key][eq]=x` -> {"key": {"eq": "x"}} for root "filter"; plain `root=x` -> {"": "x"}."""
    out: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if name.split("[", 1)[0].split("]", 1)[0] != root:
            continue  # another parameter's
        match = _BRACKETS.match(name)
        if not match or "[" in match.group(2)[1:-1].replace("][", ""):
            # `filter[a`, `filter[a]b`, `filter[x]]`: not a deep-object name; refused, not ignored
            raise BadRequest.field(name, f"is not of the form {root}[name][op]", "invalid", "query")
        parts = re.findall(r"\[([^\]]*)\]", match.group(2))
        if not parts:
            out[""] = value
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadRequest.field(name, "conflicts with another parameter", "invalid", "query")
        node[parts[-1]] = value
    return out


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    def slice(self, items: Sequence[T]) -> list[T]:
        start = (self.number - 1) * self.size
        return list(items[start : start + self.size])

    def response(self, items: Sequence[Any], total: int) -> dict[str, Any]:
        return {
            "data": list(items),
            "meta": {"page": {"number": self.number, "size": self.size, "total": total}},
        }


def _int_param(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest.field(name, "must be an integer", "is_integer", "query") from None
    if not low <= number <= high:
        raise BadRequest.field(name, f"must be between {low} and {high}", "invalid", "query")
    return number


def page_params(params: dict[str, str] | None) -> Page:
    page = nested(params, "page")
    unknown = set(page) - {"size", "number"}
    if unknown:
        raise BadRequest.field(
            f"page[{sorted(unknown)[0]}]", "is not a page parameter", "unknown_property", "query"
        )
    for name, value in page.items():
        if not isinstance(value, str):  # `page[size][x]=2`: a nested value is no integer
            raise BadRequest.field(f"page[{name}]", "must be an integer", "is_integer", "query")
    size = _int_param("page[size]", page["size"], 1, MAX_PAGE_SIZE) if "size" in page else DEFAULT_PAGE_SIZE
    number = _int_param("page[number]", page["number"], 1, 10**9) if "number" in page else 1
    return Page(number, size)


def _choice_error(field: str, reason: str, choices: Sequence[str]) -> BadRequest:
    """The contract's `enum` rule requires `choices` (InvalidParameterChoiceItem)."""
    param = {**invalid_parameter(field, reason, "enum", "query"), "choices": list(choices)}
    return BadRequest(f"Invalid [{field}]: {reason}", [param])


def string_filters(params: dict[str, str] | None, allowed: Sequence[str]) -> list[StringFilter]:
    filters: list[StringFilter] = []
    for field, spec in nested(params, "filter").items():
        if field not in allowed:
            raise BadRequest.field(
                f"filter[{field}]",
                f"unknown filter; supported: {', '.join(allowed)}",
                "unknown_property",
                "query",
            )
        if isinstance(spec, str):
            filters.append(StringFilter(field, "eq", spec))
            continue
        if not spec:
            raise BadRequest.field(f"filter[{field}]", "needs an operator", "invalid", "query")
        # Several operators on one field all apply (the contract's own example combines them).
        for op, value in spec.items():
            if op not in STRING_OPS or not isinstance(value, str):
                raise _choice_error(
                    f"filter[{field}][{op}]",
                    f"unknown operator; use one of {', '.join(STRING_OPS)}",
                    STRING_OPS,
                )
            filters.append(StringFilter(field, op, value))
    return filters


ULID_OPS = ("eq", "oeq", "neq")


def ulid_filter(field: str, spec: Any) -> StringFilter:
    """`filter[<field>]` (contract ULIDFieldFilter): a ULID, or one of eq / oeq / neq."""
    name = f"filter[{field}]"
    if isinstance(spec, str):
        spec = {"eq": spec}
    if len(spec) != 1:
        raise BadRequest.field(name, "use exactly one operator", "invalid", "query")
    op, value = next(iter(spec.items()))
    if op not in ULID_OPS or not isinstance(value, str):
        reason = f"unknown operator; use one of {', '.join(ULID_OPS)}"
        param = {**invalid_parameter(f"{name}[{op}]", reason, "enum", "query"), "choices": list(ULID_OPS)}
        raise BadRequest(f"Invalid [{name}[{op}]]: {reason}", [param])
    if not all(is_ulid(v) for v in (value.split(",") if op == "oeq" else [value])):
        raise BadRequest.field(f"{name}[{op}]", "must be a ULID", "matches_regex", "query")
    return StringFilter(field, op, value)
