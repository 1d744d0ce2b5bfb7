"""JSONPath extraction for meter values and dimensions (product §3.3, engine-rules §2.2).

Most meters use plain dotted paths (`$.tokens`, `$.usage.input`), which take a fast path;
anything else goes through jsonpath-ng. Compiled paths are cached.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from jsonpath_ng.parser import parse as jp_parse

_MISSING = object()
_SIMPLE = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_\-]*)+$")
# A numeric string is an ASCII decimal number (strconv.ParseFloat's decimal form, as the reference):
# Decimal alone also reads digit grouping ("1_000") and other scripts' digits (Arabic-Indic, full-width).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Spelled-out NaN and infinities still parse, to be reported as such below.
_SPECIAL = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)


class JsonPath:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self._parts: tuple[str, ...] | None = None
        self._compiled: Any = None
        if _SIMPLE.match(expr):
            self._parts = tuple(expr[2:].split("."))
        else:
            self._compiled = jp_parse(expr)

    def find(self, data: Any) -> Any:
        """The first match, or the module's _MISSING sentinel."""
        if self._parts is not None:
            node = data
            for part in self._parts:
                if not isinstance(node, dict) or part not in node:
                    return _MISSING
                node = node[part]
            return node
        matches = self._compiled.find(data)
        return matches[0].value if matches else _MISSING


@lru_cache(maxsize=4096)
def compile_path(expr: str) -> JsonPath:
    return JsonPath(expr)


def validate_path(expr: str) -> str | None:
    """None when valid, else the reason."""
    if not expr.startswith("$"):
        return "must be a JSONPath expression starting with '$'"
    try:
        compile_path(expr)
    except Exception as exc:
        return f"is not a valid JSONPath expression ({exc})"
    return None


def is_missing(value: Any) -> bool:
    return value is _MISSING


def dimension_value(data: Any, path: JsonPath) -> str:
    """Group-by values stringify; arrays and objects (and missing paths) become ""."""
    value = path.find(data) if isinstance(data, dict) else _MISSING
    if value is _MISSING or isinstance(value, dict | list):
        return ""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# DynamoDB numbers carry 38 significant digits; we keep meter values within that.
MAX_DIGITS = 38


class ValueError_(Exception):
    """A meter value that can't be aggregated; the message is the event's validation error."""


def numeric_value(data: Any, path: JsonPath) -> Decimal:
    """Number or numeric string -> Decimal (engine-rules §2.1 async validation)."""
    value = path.find(data) if isinstance(data, dict) else _MISSING
    if value is _MISSING:
        raise ValueError_(f'missing value property: "{path.expr}"')
    if value is None:
        raise ValueError_(f'null value property: "{path.expr}"')
    if isinstance(value, bool):
        raise ValueError_(f'value property "{path.expr}" is a boolean, not a number')
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))  # the shortest decimal that round-trips, not the binary expansion
    elif isinstance(value, str):
        text = value.strip(" \t\n\r")
        try:
            if not (_NUMBER.fullmatch(text) or _SPECIAL.fullmatch(text)):
                raise InvalidOperation
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError_(f'value property "{path.expr}" is not a number: "{value[:64]}"') from None
    else:
        raise ValueError_(f'value property "{path.expr}" is not a number')
    if result.is_nan():
        raise ValueError_("value cannot be NaN")
    if result.is_infinite():
        raise ValueError_("value cannot be infinity")
    _sign, digits, exponent = result.as_tuple()
    if len(digits) > MAX_DIGITS or not isinstance(exponent, int) or not -130 <= exponent <= 125 - len(digits):
        raise ValueError_(f'value property "{path.expr}" has more precision or range than 38 digits')
    return result
