"""Validate harness responses against Kong's Konnect Metering & Billing v3 contract.

The contract (a 450 KB YAML) is read once per process and cached. `validate(response, operation_id)`
checks that the status is one the operation declares and that the body validates against the
declared schema for that status and content type (OpenAPI 3.0 semantics: nullable, readOnly,
formats), resolving `$ref`s inside the contract document.

The contract paths are `/openmeter/...`; Meterline serves them under `/v3/openmeter/...`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import yaml
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.support import harness

_CONTRACT = Path("shared") / "contracts" / "konnect-metering-billing-v3.openapi.yaml"
# `../shared` beside the repo; a git worktree nested deeper finds it further up.
CONTRACT_PATH = next(
    (p / _CONTRACT for p in Path(__file__).resolve().parents[3:] if (p / _CONTRACT).is_file()),
    Path(__file__).resolve().parents[2] / ".." / _CONTRACT,
)
SERVED_PREFIX = "/v3"  # contract paths start at /openmeter; the servers' base path is /v3
_URI = "urn:meterline:contract"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class ContractError(AssertionError):
    pass


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # upper case
    path: str  # contract path, e.g. /openmeter/meters/{meterId}
    pointer: str  # JSON pointer to the operation object

    @property
    def served_path(self) -> str:
        return SERVED_PREFIX + self.path


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    with CONTRACT_PATH.open("rb") as fh:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(fh, Loader=loader)


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(_URI, Resource.from_contents(spec(), default_specification=DRAFT4))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@lru_cache(maxsize=1)
def operations() -> dict[str, Operation]:
    ops: dict[str, Operation] = {}
    for path, item in spec()["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op and op.get("operationId"):
                ops[op["operationId"]] = Operation(
                    op["operationId"], method.upper(), path, f"/paths/{_escape(path)}/{method}"
                )
    return ops


def operation(operation_id: str) -> Operation:
    try:
        return operations()[operation_id]
    except KeyError:
        raise ContractError(f"operation [{operation_id}] is not in the contract") from None


def _get(pointer: str) -> Any:
    node: Any = spec()
    for raw in pointer.strip("/").split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _deref(pointer: str) -> tuple[str, Any]:
    """Follow `$ref` chains inside the contract; return the final pointer and node."""
    node = _get(pointer)
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ContractError(f"unsupported or cyclic $ref [{ref}] at {pointer}")
        seen.add(ref)
        pointer = ref[1:]
        node = _get(pointer)
    return pointer, node


def path_regex(contract_path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", contract_path)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


def find_operation(method: str, served_path: str) -> Operation | None:
    """The contract operation a served `METHOD /v3/openmeter/...` request maps to, if any."""
    path = served_path.split("?", 1)[0]
    if path.startswith(SERVED_PREFIX + "/"):
        path = path[len(SERVED_PREFIX) :]
    # Literal paths win over templated ones (e.g. /meters/query vs /meters/{meterId}).
    candidates = sorted(operations().values(), key=lambda o: o.path.count("{"))
    for op in candidates:
        if op.method == method.upper() and path_regex(op.path).match(path):
            return op
    return None


@lru_cache(maxsize=256)
def _validator(schema_pointer: str) -> OAS30ReadValidator:
    return OAS30ReadValidator(
        {"$ref": f"{_URI}#{schema_pointer}"}, registry=_registry(), format_checker=oas30_format_checker
    )


def validate_schema(instance: Any, schema_pointer: str) -> None:
    """Validate `instance` against the schema at a JSON pointer (e.g. /components/schemas/Meter)."""
    _get(schema_pointer)  # fail clearly on a bad pointer
    errors = sorted(_validator(schema_pointer).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:10]
        ]
        raise ContractError(f"body does not match {schema_pointer}:\n" + "\n".join(lines))


def validate_component(instance: Any, schema_name: str) -> None:
    validate_schema(instance, f"/components/schemas/{schema_name}")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json(mtype: str) -> bool:
    return mtype == "application/json" or mtype.endswith("+json")


def declared_statuses(operation_id: str) -> list[str]:
    op = _get(operation(operation_id).pointer)
    return list(op.get("responses", {}))


def validate(response: harness.Response, operation_id: str, response_ref: str | None = None) -> Any:
    """Assert `response` conforms to the contract for `operation_id`; return the parsed body.

    `response_ref` names a shared response in `#/components/responses` to validate against when the
    operation itself doesn't declare the status (used to check the body shape of known gaps).
    """
    op = operation(operation_id)
    responses = _get(op.pointer).get("responses", {})
    status = str(response.status)
    if response_ref is not None:
        pointer = f"/components/responses/{response_ref}"
    elif status in responses:
        pointer = f"{op.pointer}/responses/{status}"
    elif f"{status[0]}XX" in responses:
        pointer = f"{op.pointer}/responses/{status[0]}XX"
    elif "default" in responses:
        pointer = f"{op.pointer}/responses/default"
    else:
        raise ContractError(
            f"{op.method} {op.path} ({operation_id}) does not declare status {status}; "
            f"declared: {', '.join(responses)}; got {response!r}"
        )
    pointer, declared = _deref(pointer)
    content: dict[str, Any] = declared.get("content") or {}
    if not content:
        if response.text:
            raise ContractError(f"{operation_id} {status} declares no body but got {response.text[:200]!r}")
        return None
    mtype = media_type(response.headers.get("content-type"))
    if mtype not in content:
        raise ContractError(
            f"{operation_id} {status}: content type [{mtype or 'missing'}] not declared; "
            f"declared: {', '.join(content)}"
        )
    if "schema" not in content[mtype]:
        return response.text
    schema_pointer = f"{pointer}/content/{_escape(mtype)}/schema"
    if _is_json(mtype):
        try:
            body = orjson.loads(response.text)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"{operation_id} {status}: body is not JSON ({exc})") from None
    else:
        body = response.text
    validate_schema(body, schema_pointer)
    return body


# -- harness workarounds (for the lead to fold into tests/support/harness.py) -----------------------
class FullResponse(harness.Response):
    """harness.Response reads only `headers`; the powertools resolver answers in `multiValueHeaders`."""

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__(raw)
        for name, values in (raw.get("multiValueHeaders") or {}).items():
            if values:
                self.headers.setdefault(name.lower(), values[-1])


@pytest.fixture
def full_headers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(harness, "Response", FullResponse)
    yield


_ORIGINAL_SESSION = boto3.session.Session
_SESSIONS: dict[tuple[tuple[str, Any], ...], Any] = {}


class _CachedSession:
    """A boto3 Session whose clients are built once per (service, config)."""

    def __init__(self, **kwargs: Any) -> None:
        self._session = _ORIGINAL_SESSION(**kwargs)
        self._clients: dict[tuple[Any, ...], Any] = {}

    def client(self, service: str, **kwargs: Any) -> Any:
        key = (service, *sorted((k, id(v)) for k, v in kwargs.items()))
        if key not in self._clients:
            self._clients[key] = self._session.client(service, **kwargs)
        return self._clients[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _cached_session(**kwargs: Any) -> Any:
    key = tuple(sorted(kwargs.items()))
    if key not in _SESSIONS:
        _SESSIONS[key] = _CachedSession(**kwargs)
    return _SESSIONS[key]


@pytest.fixture
def fast_boto3(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reuse boto3 sessions across Stacks: a fresh Session re-parses botocore's JSON models.

    `Stack()` builds a new session per test and the shared clients build another, ~0.5 s of a
    0.65 s setup; with cached sessions and clients a fresh stack takes a few tens of ms. The moto
    backends are still reset per test. Request it before `stack` (usefixtures order).
    """
    monkeypatch.setattr(boto3.session, "Session", _cached_session)
    yield
