"""CloudEvents 1.0 validation for the ingest endpoint (contract schema `MeteringEvent`).

Hand-written rather than pydantic: it runs for every event on the hot path and must name the
exact field and batch index in its errors (engine-rules §2.1).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shared.core.errors import FieldError
from shared.core.timeutil import event_time_problem, format_rfc3339, parse_rfc3339

REQUIRED = ("id", "source", "type", "subject")
ALLOWED = frozenset(
    {"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time", "data"}
)
# uri-reference: any string without whitespace or control characters (RFC 3986 is permissive here).
_URI_REF = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f]*$")
MAX_ID_LENGTH = 512
# UTF-8 bytes of `source`, `type` and `subject` (and at most MAX_ID_LENGTH bytes of `id`). They go
# into DynamoDB keys downstream (dedupe claim `<source>/<id>`, the listing's block sort keys, the
# subject index, counter partitions), whose limits (2,048 bytes for a partition key, 1,024 for a
# sort key) an accepted event must never exceed: the aggregate would fail its batch forever.
MAX_ATTRIBUTE_BYTES = 256
_BYTE_LIMITS = {
    "id": MAX_ID_LENGTH,
    "source": MAX_ATTRIBUTE_BYTES,
    "type": MAX_ATTRIBUTE_BYTES,
    "subject": MAX_ATTRIBUTE_BYTES,
}
# Nesting levels of `data` (the object itself is level 1). The pipeline re-serialises every event
# inside envelopes (stream record, stored event, `GET /events` page) and orjson refuses to write
# more than 254 levels; 32 is DynamoDB's own document-nesting limit and far beyond real usage data.
MAX_DATA_DEPTH = 32


class EventError(Exception):
    def __init__(self, params: list[FieldError]) -> None:
        super().__init__(params[0].reason)
        self.params = params


def _field(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit`; iterative, so any depth orjson parsed is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def normalize_event(raw: Any, received_at: datetime, prefix: str = "") -> dict[str, Any]:
    """Validate one CloudEvent; return it normalised (specversion and UTC `time` filled in)."""
    if not isinstance(raw, dict):
        raise EventError([FieldError(prefix or "body", "must be a JSON object (a CloudEvent)", "is_object")])
    params: list[FieldError] = []
    for name in raw:
        if name not in ALLOWED:
            params.append(
                FieldError(
                    _field(prefix, name),
                    "is not a CloudEvents attribute this API accepts",
                    "unknown_property",
                )
            )
    for name in REQUIRED:
        value = raw.get(name)
        if value is None:
            params.append(FieldError(_field(prefix, name), "is a required field", "required"))
        elif not isinstance(value, str):
            params.append(FieldError(_field(prefix, name), "must be a string", "is_string"))
        elif value == "":
            params.append(
                FieldError(_field(prefix, name), "must not be empty", "min_length", extra={"minimum": 1})
            )
    if isinstance(raw.get("id"), str) and len(raw["id"]) > MAX_ID_LENGTH:
        params.append(
            FieldError(_field(prefix, "id"), f"must be at most {MAX_ID_LENGTH} characters", "invalid")
        )
    for name, limit in _BYTE_LIMITS.items():
        value = raw.get(name)
        if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) > limit:
            if name == "id" and len(value) > MAX_ID_LENGTH:
                continue  # reported as too many characters above
            params.append(
                FieldError(
                    _field(prefix, name),
                    f"must be at most {limit} bytes in UTF-8",
                    "max_length",
                    extra={"maximum": limit},
                )
            )
    source = raw.get("source")
    if isinstance(source, str) and source and not _URI_REF.match(source):
        params.append(
            FieldError(_field(prefix, "source"), "must be a URI-reference (no whitespace)", "matches_regex")
        )
    spec = raw.get("specversion", "1.0")
    if spec != "1.0":
        params.append(FieldError(_field(prefix, "specversion"), 'must be "1.0"', "invalid"))
    dct = raw.get("datacontenttype")
    if dct is not None and dct != "application/json":
        params.append(
            FieldError(
                _field(prefix, "datacontenttype"),
                "only application/json is accepted",
                "enum",
                choices=("application/json",),
            )
        )
    schema = raw.get("dataschema")
    if schema is not None and (not isinstance(schema, str) or not _URI.match(schema)):
        params.append(FieldError(_field(prefix, "dataschema"), "must be an absolute URI", "invalid"))
    data = raw.get("data")
    if data is not None and not isinstance(data, dict):
        params.append(FieldError(_field(prefix, "data"), "must be a JSON object when present", "is_object"))
    elif data is not None and too_deep(data, MAX_DATA_DEPTH):
        params.append(
            FieldError(
                _field(prefix, "data"),
                f"must not be nested more than {MAX_DATA_DEPTH} levels deep",
                "invalid",
            )
        )
    time_value = raw.get("time")
    event_time = received_at
    if time_value is not None:
        try:
            event_time = parse_rfc3339(time_value)
        except ValueError as exc:
            params.append(FieldError(_field(prefix, "time"), str(exc), "is_date_time"))
        else:
            if reason := event_time_problem(event_time, received_at):
                params.append(FieldError(_field(prefix, "time"), reason, "invalid"))
    if params:
        raise EventError(params)
    event = {
        "specversion": "1.0",
        "id": raw["id"],
        "source": raw["source"],
        "type": raw["type"],
        "subject": raw["subject"],
        "time": format_rfc3339(event_time),
    }
    for name in ("datacontenttype", "dataschema", "data"):
        if raw.get(name) is not None:
            event[name] = raw[name]
    return event
