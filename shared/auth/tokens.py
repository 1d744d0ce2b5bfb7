"""Bearer API tokens with Konnect-style roles, stored only as SHA-256 hashes.

Roles: `admin` (everything), `viewer` (read-only: GETs and usage queries), `ingest` (only
POST /events). A leaked table dump reveals no usable token.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from typing import Any

from shared.api.problem import Forbidden, Unauthorized
from shared.aws import clients
from shared.aws.dynamo import from_item, to_item
from shared.settings import get_settings

TOKEN_PREFIX = "mlt_"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"
    INGEST = "ingest"


class Permission(StrEnum):
    INGEST = "ingest"
    READ = "read"
    WRITE = "write"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.INGEST: frozenset({Permission.INGEST}),
}


def new_token_value() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _key(raw: str) -> dict[str, Any]:
    return {"pk": {"S": f"TOKEN#{_hash(raw)}"}, "sk": {"S": "TOKEN"}}


def ensure_token(raw_token: str, role: str, name: str) -> None:
    """Idempotently register a token (used by the local runtime and the admin CLI)."""
    item = to_item({"pk": f"TOKEN#{_hash(raw_token)}", "sk": "TOKEN", "role": Role(role).value, "name": name})
    clients.dynamodb().put_item(TableName=get_settings().config_table, Item=item)


def revoke_token(raw_token: str) -> None:
    clients.dynamodb().delete_item(TableName=get_settings().config_table, Key=_key(raw_token))


def bearer_from_headers(headers: dict[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and value:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def authorize(headers: dict[str, str] | None, needed: Permission) -> Role:
    """Resolve the caller's role; 401 without a valid token, 403 when the role lacks `needed`."""
    raw = bearer_from_headers(headers)
    if raw is None:
        raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'")
    resp = clients.dynamodb().get_item(TableName=get_settings().config_table, Key=_key(raw))
    if "Item" not in resp:
        raise Unauthorized("Invalid credentials")
    role = Role(from_item(resp["Item"])["role"])
    if needed not in _GRANTS[role]:
        raise Forbidden(f"Role [{role.value}] may not perform this action (needs [{needed.value}])")
    return role
