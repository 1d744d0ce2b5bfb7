"""The contract's string filters (`QueryFilterString`, `QueryFilterStringMapItem`) for meter queries."""

from __future__ import annotations

from typing import Any

from shared.core.errors import FieldError, InvalidInput

_LEAF = {"eq", "neq", "contains", "ncontains"}
_LIST = {"in", "nin"}
_NESTED = {"and", "or"}


def _bad(field: str, reason: str) -> InvalidInput:
    return InvalidInput.field(field, reason, "invalid")


def validate_filter(spec: Any, field: str, map_item: bool = True) -> dict[str, Any]:
    """Exactly one operator per filter object (contract), with the contract's item limits."""
    if not isinstance(spec, dict):
        raise _bad(field, "must be a filter object")
    if len(spec) != 1:
        raise _bad(field, "use exactly one operator per filter object")
    op, value = next(iter(spec.items()))
    allowed = _LEAF | _LIST | _NESTED | ({"exists"} if map_item else set())
    if op not in allowed:
        choices = sorted(allowed)
        reason = f"unknown operator; use one of {', '.join(choices)}"
        raise InvalidInput(
            f"Invalid [{field}.{op}]: unknown operator",
            (FieldError(f"{field}.{op}", reason, "enum", "body", tuple(choices)),),
        )
    if op in _LEAF and not isinstance(value, str):
        raise _bad(f"{field}.{op}", "must be a string")
    if op == "exists" and not isinstance(value, bool):
        raise _bad(f"{field}.{op}", "must be a boolean")
    if op in _LIST and (
        not isinstance(value, list)
        or not 1 <= len(value) <= 100
        or not all(isinstance(v, str) for v in value)
    ):
        raise _bad(f"{field}.{op}", "must be a list of 1 to 100 strings")
    if op in _NESTED:
        if not isinstance(value, list) or not 1 <= len(value) <= 10:
            raise _bad(f"{field}.{op}", "must be a list of 1 to 10 filters")
        for i, sub in enumerate(value):
            validate_filter(sub, f"{field}.{op}[{i}]", map_item=False)
    return spec


def matches(spec: dict[str, Any], value: str | None) -> bool:
    """`value` is None when the dimension is absent from the event."""
    op, arg = next(iter(spec.items()))
    if op == "exists":
        return (value is not None and value != "") is arg
    actual = value or ""
    if op == "eq":
        return bool(actual == arg)
    if op == "neq":
        return bool(actual != arg)
    if op == "contains":
        return arg in actual
    if op == "ncontains":
        return arg not in actual
    if op == "in":
        return actual in arg
    if op == "nin":
        return actual not in arg
    if op == "and":
        return all(matches(s, value) for s in arg)
    return any(matches(s, value) for s in arg)  # or
