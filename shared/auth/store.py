"""API tokens in the config table: issue (secret shown once), list, get, revoke.

Keys:
  `pk=TOKEN#<sha256>, sk=TOKEN`   what `authorize` reads (role), plus id, name, created_at, a short
                                  hint, and `gsi1pk=TOKEN, gsi1sk=<created_at>#<id>` to list them
  `pk=TOKENID#<id>, sk=TOKENID`   id -> hash, so GET/DELETE by id never scan
  `pk=TOKENS, sk=ADMINS`          `n` = active admin tokens; every admin issue/revoke moves it in the
                                  same transaction, and a revoke needs n > 1: the stack can never
                                  lose its last admin token, even under concurrent revokes.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from shared.api.params import page_params
from shared.api.problem import Conflict, NotFound
from shared.api.validation import validate_model
from shared.auth.tokens import Role, new_token_value, token_hash, token_key
from shared.aws.dynamo import from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.core.ids import is_ulid, new_id
from shared.core.timeutil import Clock, format_rfc3339, parse_rfc3339

_ADMINS_KEY = {"pk": {"S": "TOKENS"}, "sk": {"S": "ADMINS"}}
HINT_RANDOM_CHARS = 4  # of 43: enough to tell tokens apart in a list, useless to an attacker


class CreateTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    role: Role


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    role: Role
    created_at: datetime
    hint: str

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "hint": self.hint,
            "created_at": format_rfc3339(self.created_at),
        }


def _token_from_record(rec: dict[str, Any]) -> Token:
    return Token(
        id=rec["id"],
        name=rec["name"],
        role=Role(rec["role"]),
        created_at=parse_rfc3339(rec["created_at"]),
        hint=rec.get("hint", ""),
    )


def _hint(raw: str, role: Role) -> str:
    prefix = f"mlt_{role.value}_"
    head = len(prefix) + HINT_RANDOM_CHARS if raw.startswith(prefix) else HINT_RANDOM_CHARS
    return raw[:head] + "…"


class LastAdminToken(Exception):
    pass


class TokenStore(TableRepository):
    def __init__(self, table: str, client: Any | None = None, clock: Clock | None = None) -> None:
        super().__init__(table, client)
        self.clock = clock or Clock()

    # -- issuing -----------------------------------------------------------------------------------

    def create(self, body: Any) -> tuple[Token, str]:
        """API entry: validate `{name, role}`, issue a fresh token; the raw value is returned once."""
        req = validate_model(CreateTokenRequest, body)
        return self.issue(req.role, req.name)

    def issue(self, role: Role, name: str, raw: str | None = None) -> tuple[Token, str]:
        """The one way a token is created (API, CLI bootstrap, local runtime). Raises FileExistsError
        when `raw` is given and already registered."""
        role = Role(role)
        raw = raw or new_token_value(role.value)
        token = Token(id=new_id(), name=name, role=role, created_at=self.clock.now(), hint=_hint(raw, role))
        digest = token_hash(raw)
        created = format_rfc3339(token.created_at)
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "Item": to_item(
                        {
                            "pk": f"TOKEN#{digest}",
                            "sk": "TOKEN",
                            "gsi1pk": "TOKEN",
                            "gsi1sk": f"{created}#{token.id}",
                            "id": token.id,
                            "role": role.value,
                            "name": name,
                            "hint": token.hint,
                            "created_at": created,
                        }
                    ),
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "Item": to_item({"pk": f"TOKENID#{token.id}", "sk": "TOKENID", "hash": digest}),
                }
            },
        ]
        if role is Role.ADMIN:
            items.append({"Update": self._admin_count_update(+1)})
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise FileExistsError("token already registered") from exc
            raise
        return token, raw

    def ensure(self, raw: str, role: Role, name: str) -> None:
        """Register a known token value unless it already is (idempotent across restarts)."""
        resp = self.client.get_item(TableName=self.table, Key=token_key(raw), ConsistentRead=True)
        if "Item" in resp:
            return
        with suppress(FileExistsError):  # registered concurrently
            self.issue(role, name, raw=raw)

    def _admin_count_update(self, delta: int) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": _ADMINS_KEY,
            "UpdateExpression": "ADD n :d",
            "ExpressionAttributeValues": {":d": {"N": str(delta)}},
        }
        if delta < 0:
            update["ConditionExpression"] = "n > :one"
            update["ExpressionAttributeValues"][":one"] = {"N": "1"}
        return update

    def admin_count(self) -> int:
        item = self.client.get_item(TableName=self.table, Key=_ADMINS_KEY, ConsistentRead=True).get("Item")
        return int(item["n"]["N"]) if item else 0

    # -- reading -----------------------------------------------------------------------------------

    def _hash_for(self, token_id: str) -> str | None:
        if not is_ulid(token_id):
            return None
        key = to_item({"pk": f"TOKENID#{token_id}", "sk": "TOKENID"})
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return str(item["hash"]["S"]) if item else None

    def _record(self, token_id: str) -> tuple[str, dict[str, Any]]:
        digest = self._hash_for(token_id)
        if digest is not None:
            resp = self.client.get_item(
                TableName=self.table, Key=token_key(digest, hashed=True), ConsistentRead=True
            )
            if "Item" in resp:
                return digest, from_item(resp["Item"])
        raise NotFound(f"Token [{token_id}] not found")

    def get(self, token_id: str) -> Token:
        return _token_from_record(self._record(token_id)[1])

    def list(self, params: dict[str, str] | None) -> dict[str, Any]:
        page = page_params(params)
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": "TOKEN"}},
        )
        tokens = [_token_from_record(from_item(i)) for i in items]
        return page.response([t.to_api() for t in page.slice(tokens)], len(tokens))

    # -- revoking ----------------------------------------------------------------------------------

    def revoke(self, token_id: str) -> None:
        """Delete the token (it fails authorization from the next request on). 409 for the last
        admin token: the stack would have no way left to manage itself."""
        digest, rec = self._record(token_id)
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": token_key(digest, hashed=True),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": to_item({"pk": f"TOKENID#{token_id}", "sk": "TOKENID"}),
                }
            },
        ]
        admin = rec["role"] == Role.ADMIN.value
        if admin:
            items.append({"Update": self._admin_count_update(-1)})
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if admin and len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                raise Conflict(
                    f"Token [{token_id}] is the last active admin token; create another admin token first",
                    conflicting_entity_id=token_id,
                ) from None
            raise NotFound(f"Token [{token_id}] not found") from None
