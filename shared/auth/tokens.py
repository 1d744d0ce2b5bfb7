"""Bearer API tokens with Konnect-style roles, stored only as SHA-256 hashes.

Roles: `admin` (everything, and the only role that manages tokens), `viewer` (read-only: GETs and
usage queries), `ingest` (only POST /events). A leaked table dump reveals no usable token.
Issuing, listing and revoking live in `shared/auth/store.py`.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from typing import Any

from shared.api.problem import Forbidden, Unauthorized
from shared.aws import clients
from shared.aws.dynamo import from_item
from shared.settings import get_settings

TOKEN_PREFIX = "mlt_"
TOKEN_BYTES = 32  # 256 bits from `secrets`


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"
    INGEST = "ingest"


class Permission(StrEnum):
    INGEST = "ingest"
    READ = "read"
    WRITE = "write"
    TOKENS = "tokens"  # manage API tokens (admin only, even for GET: the list names every token)


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.INGEST: frozenset({Permission.INGEST}),
}


def new_token_value(role: str = Role.ADMIN.value) -> str:
    """`mlt_<role>_<43 url-safe chars>`: recognisable in logs and secret scanners, 256 random bits."""
    return f"{TOKEN_PREFIX}{Role(role).value}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_key(raw_or_hash: str, *, hashed: bool = False) -> dict[str, Any]:
    digest = raw_or_hash if hashed else token_hash(raw_or_hash)
    return {"pk": {"S": f"TOKEN#{digest}"}, "sk": {"S": "TOKEN"}}


def ensure_token(raw_token: str, role: str, name: str) -> None:
    """Idempotently register a known token value (local runtime, tests, bench)."""
    from shared.auth.store import TokenStore  # the store builds on this module

    TokenStore(get_settings().config_table).ensure(raw_token, Role(role), name)


def bearer_from_headers(headers: dict[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and value:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def authorize(headers: dict[str, str] | None, needed: Permission) -> Role:
    """Resolve the caller's role; 401 without a valid token, 403 when the role lacks `needed`.

    No cache, and a consistent read: a revoked token fails on the very next request."""
    raw = bearer_from_headers(headers)
    if raw is None:
        raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'")
    resp = clients.dynamodb().get_item(
        TableName=get_settings().config_table, Key=token_key(raw), ConsistentRead=True
    )
    if "Item" not in resp:
        raise Unauthorized("Invalid credentials")
    role = Role(from_item(resp["Item"])["role"])
    if needed not in _GRANTS[role]:
        raise Forbidden(f"Role [{role.value}] may not perform this action (needs [{needed.value}])")
    return role
