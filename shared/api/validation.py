"""Turn pydantic validation errors into the contract's `invalid_parameters`."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

from shared.api.problem import BadRequest
from shared.core.timeutil import parse_rfc3339

M = TypeVar("M", bound=BaseModel)

# pydantic error type -> contract InvalidRules value
_RULES = {
    "missing": "required",
    "extra_forbidden": "unknown_property",
    "string_pattern_mismatch": "matches_regex",
    "string_type": "is_string",
    "int_type": "is_integer",
    "int_parsing": "is_integer",
    "bool_type": "is_boolean",
    "bool_parsing": "is_boolean",
    "dict_type": "is_object",
    "model_type": "is_object",
    "list_type": "is_array",
    "datetime_type": "is_date_time",
    "datetime_parsing": "is_date_time",
    "datetime_from_date_parsing": "is_date_time",
    "timezone_aware": "is_date_time",
    "enum": "enum",
    "literal_error": "enum",
    "float_type": "is_number",
    "float_parsing": "is_number",
    "decimal_parsing": "is_number",
    "decimal_type": "is_number",
}


def _field(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after", "function-before") or str(item).startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def invalid_parameters(exc: ValidationError, source: str = "body", prefix: str = "") -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False):
        field = _field(tuple(err["loc"]))
        if prefix:
            field = prefix + ("" if field.startswith("[") else ".") + field if field != "body" else prefix
        kind = err["type"]
        reason = str(err["msg"])
        if kind == "value_error":
            reason = reason.removeprefix("Value error, ")
        param: dict[str, Any] = {"field": field, "reason": reason, "source": source}
        ctx = err.get("ctx") or {}
        if kind in ("string_too_short", "too_short"):
            param["rule"] = "min_length" if kind == "string_too_short" else "min_items"
            param["minimum"] = int(ctx.get("min_length", 0))
        elif kind in ("string_too_long", "too_long"):
            param["rule"] = "max_length" if kind == "string_too_long" else "max_items"
            param["maximum"] = int(ctx.get("max_length", 0))
        elif kind in ("enum", "literal_error") and "expected" in ctx:
            param["rule"] = "enum"
            param["choices"] = [
                c.strip().strip("'") for c in str(ctx["expected"]).replace(" or ", ",").split(",")
            ]
        else:
            param["rule"] = _RULES.get(kind, "invalid")
        params.append(param)
    return params


# How deep a request body may nest. No contract body comes near it; deeper ones made the recursive
# walks (null checks, Python's json for Decimal numbers) raise RecursionError: a 500.
MAX_BODY_DEPTH = 64


class _DuplicateMember(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateMember(name)
            seen.add(name)
    return obj


def _too_deep(data: Any) -> bool:
    """True when `data` nests deeper than MAX_BODY_DEPTH (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_BODY_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json_body(raw: str | bytes | None) -> Any:
    if raw is None or raw == "" or raw == b"":
        raise BadRequest.field("body", "request body is required", "required")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest.field(
            "body", f"is not valid JSON ({exc.msg} at position {exc.pos})", "invalid"
        ) from exc
    if _too_deep(data):
        raise BadRequest.field("body", f"must not nest more than {MAX_BODY_DEPTH} levels deep", "invalid")
    # A member given twice in one object: orjson keeps the last, a proxy, a log or another parser
    # may keep the first (and a mapping like a meter's `dimensions` silently lost one). Refused, as
    # RFC 8259 leaves the meaning open; checked by a second parse that sees every member.
    try:
        json.loads(raw, object_pairs_hook=_unique_members)
    except _DuplicateMember as exc:
        raise BadRequest.field(
            "body", f"has the member [{exc.name}] twice in one object", "invalid"
        ) from None
    return data


def _nulls(data: Any, nullable: frozenset[str], path: str = "") -> list[str]:
    """Dotted paths of JSON `null`s in `data` that are not declared nullable."""
    found: list[str] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        here = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        if value is None and here not in nullable:
            found.append(here)
        elif isinstance(value, dict | list):
            found += _nulls(value, nullable, here)
    return found


def validate_model(model: type[M], data: Any, source: str = "body") -> M:
    """Validate a request body. A model with `NULLABLE` (the contract's `nullable: true` fields, as
    dotted paths) rejects `null` anywhere else: pydantic's `X | None = None` would take it as absent."""
    if not isinstance(data, dict):
        raise BadRequest.field(source, "must be a JSON object", "is_object", source)
    nullable = getattr(model, "NULLABLE", None)
    if nullable is not None and (nulls := _nulls(data, nullable)):
        params = [
            {"field": f, "reason": "must not be null", "source": source, "rule": "invalid"} for f in nulls
        ]
        raise BadRequest(f"Invalid [{nulls[0]}]: must not be null", params)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        params = invalid_parameters(exc, source)
        first = params[0]
        raise BadRequest(f"Invalid [{first['field']}]: {first['reason']}", params) from exc


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 strings (pydantic alone would also take epoch numbers and partial times)."""
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise PydanticCustomError("datetime_parsing", str(exc)) from None


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
