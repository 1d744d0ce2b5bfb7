"""LLM prices in the config table.

Keys:
- `pk=LLMPRICE#<id>, sk=LLMPRICE`: one price version, system or override (GET by id finds both).
  System versions: `gsi1pk=LLMPRICE, gsi1sk=<provider>#<model>#<effective_from>#<id>` - one Query
  lists them all, `begins_with(<provider>#<model>#)` gives one model's history in order.
  Overrides: `gsi1pk=LLMOVERRIDE, gsi1sk=<provider>#<model>#<currency>`.
- `pk=LLMOVERRIDEKEY#<provider>#<model>#<currency>, sk=LLMOVERRIDEKEY`: the uniqueness claim of an
  override (its `id`), written and deleted with it in one transaction.
- `pk=LLMCATALOG, sk=LLMCATALOG`: the catalog version last loaded and when (`refreshed_at`).

System version ids are ULIDs derived from (provider, model, effective_from): a refresh that runs
twice, or two at once, writes the same items, and closing a version is conditional on it still
being open, so no version is ever written twice or re-closed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ulid import ULID

from shared.aws.dynamo import batch_put, from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.core.decimals import wire
from shared.core.timeutil import format_rfc3339, parse_optional, parse_rfc3339
from shared.llmcost.models import TOKEN_FIELDS, ModelKey, PriceVersion, Source, TokenPrices

SK = "LLMPRICE"
SYSTEM_INDEX = "LLMPRICE"
OVERRIDE_INDEX = "LLMOVERRIDE"
CLAIM_SK = "LLMOVERRIDEKEY"
MARKER = {"pk": "LLMCATALOG", "sk": "LLMCATALOG"}


class Conflict(Exception):
    """A conditional write lost a race (the version was closed or the claim taken meanwhile)."""


def system_version_id(provider: str, model: str, effective_from: datetime) -> str:
    """Deterministic ULID: the effective_from in the time part, a hash of the identity in the rest."""
    millis = max(0, int(effective_from.timestamp() * 1000))
    digest = hashlib.sha256(f"{provider}\x00{model}\x00{format_rfc3339(effective_from)}".encode()).digest()
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + digest[:10]))


def _pricing_record(prices: TokenPrices) -> dict[str, str]:
    # Decimal strings, so a price round-trips exactly (and reads back without DynamoDB's float-ish Number).
    return {f: wire(v) for f in TOKEN_FIELDS if (v := getattr(prices, f)) is not None}


def _pricing(rec: dict[str, Any]) -> TokenPrices:
    def dec(name: str) -> Decimal | None:
        return Decimal(rec[name]) if name in rec else None

    return TokenPrices(
        input=Decimal(rec["input"]),
        output=Decimal(rec["output"]),
        cache_read=dec("cache_read"),
        cache_write=dec("cache_write"),
        reasoning=dec("reasoning"),
    )


def override_slot(provider: str, model: str, currency: str) -> str:
    return f"{provider}#{model}#{currency}"


def _record(v: PriceVersion) -> dict[str, Any]:
    if v.source == Source.SYSTEM:
        gsi = (SYSTEM_INDEX, f"{v.provider_id}#{v.model_id}#{format_rfc3339(v.effective_from)}#{v.id}")
    else:
        gsi = (OVERRIDE_INDEX, override_slot(v.provider_id, v.model_id, v.currency))
    return {
        "pk": f"LLMPRICE#{v.id}",
        "sk": SK,
        "gsi1pk": gsi[0],
        "gsi1sk": gsi[1],
        "id": v.id,
        "provider_id": v.provider_id,
        "provider_name": v.provider_name,
        "model_id": v.model_id,
        "model_name": v.model_name,
        "pricing": _pricing_record(v.pricing),
        "currency": v.currency,
        "source": v.source.value,
        "effective_from": format_rfc3339(v.effective_from),
        "effective_to": format_rfc3339(v.effective_to) if v.effective_to else None,
        "created_at": format_rfc3339(v.created_at),
        "updated_at": format_rfc3339(v.updated_at),
    }


def version_from_record(rec: dict[str, Any]) -> PriceVersion:
    return PriceVersion(
        id=rec["id"],
        provider_id=rec["provider_id"],
        provider_name=rec["provider_name"],
        model_id=rec["model_id"],
        model_name=rec["model_name"],
        pricing=_pricing(rec["pricing"]),
        currency=rec["currency"],
        source=Source(rec["source"]),
        effective_from=parse_rfc3339(rec["effective_from"]),
        effective_to=parse_optional(rec.get("effective_to")),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
    )


class PriceRepository(TableRepository):
    # -- reads -----------------------------------------------------------------------------------
    def get(self, price_id: str) -> PriceVersion | None:
        resp = self.client.get_item(
            TableName=self.table, Key=to_item({"pk": f"LLMPRICE#{price_id}", "sk": SK})
        )
        return version_from_record(from_item(resp["Item"])) if "Item" in resp else None

    def _index(self, partition: str, prefix: str = "") -> list[PriceVersion]:
        expr = "gsi1pk = :p" + (" AND begins_with(gsi1sk, :s)" if prefix else "")
        values: dict[str, Any] = {":p": {"S": partition}}
        if prefix:
            values[":s"] = {"S": prefix}
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression=expr,
            ExpressionAttributeValues=values,
        )
        return [version_from_record(from_item(i)) for i in items]

    def system_versions(self, provider: str | None = None) -> list[PriceVersion]:
        """Every system version (of one provider), by provider, model, effective_from."""
        return self._index(SYSTEM_INDEX, f"{provider}#" if provider else "")

    def model_versions(self, key: ModelKey) -> list[PriceVersion]:
        return self._index(SYSTEM_INDEX, f"{key.provider}#{key.model}#")

    def overrides(self) -> list[PriceVersion]:
        return self._index(OVERRIDE_INDEX)

    def override_id(self, provider: str, model: str, currency: str) -> str | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"{CLAIM_SK}#{override_slot(provider, model, currency)}", "sk": CLAIM_SK}),
            ConsistentRead=True,
        )
        return resp["Item"]["id"]["S"] if "Item" in resp else None

    def catalog_marker(self) -> tuple[str, datetime] | None:
        resp = self.client.get_item(TableName=self.table, Key=to_item(MARKER), ConsistentRead=True)
        if "Item" not in resp:
            return None
        rec = from_item(resp["Item"])
        return rec["version"], parse_rfc3339(rec["refreshed_at"])

    # -- system versions -------------------------------------------------------------------------
    def load(self, versions: list[PriceVersion]) -> None:
        """First load of models not stored yet: deterministic keys make a repeated load a no-op."""
        batch_put(self.client, self.table, [to_item(_record(v)) for v in versions])

    def append(self, close: PriceVersion, at: datetime, versions: list[PriceVersion]) -> None:
        """Close the open version at `at` and add the new ones, atomically; Conflict if already closed."""
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": to_item({"pk": f"LLMPRICE#{close.id}", "sk": SK}),
                    "UpdateExpression": "SET effective_to = :t",
                    "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(effective_to)",
                    "ExpressionAttributeValues": {":t": {"S": format_rfc3339(at)}},
                }
            }
        ]
        for v in versions:
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_record(v)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        self._transact(items, Conflict)

    def mark_refreshed(self, version: str, at: datetime) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=to_item({**MARKER, "version": version, "refreshed_at": format_rfc3339(at.astimezone(UTC))}),
        )

    # -- overrides -------------------------------------------------------------------------------
    def _claim_key(self, v: PriceVersion) -> dict[str, Any]:
        return to_item(
            {"pk": f"{CLAIM_SK}#{override_slot(v.provider_id, v.model_id, v.currency)}", "sk": CLAIM_SK}
        )

    def create_override(self, v: PriceVersion) -> None:
        """The override and its claim, atomically; Conflict if the slot was claimed meanwhile."""
        claim = {**from_item(self._claim_key(v)), "id": v.id}
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(claim),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_record(v)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
            Conflict,
        )

    def replace_override(self, v: PriceVersion) -> None:
        """Overwrite an existing override in place; Conflict if it was deleted meanwhile."""
        self._transact(
            [
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": self._claim_key(v),
                        "ConditionExpression": "id = :id",
                        "ExpressionAttributeValues": {":id": {"S": v.id}},
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_record(v)),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ],
            Conflict,
        )

    def delete_override(self, v: PriceVersion) -> None:
        """The override and its claim, atomically; Conflict if it was already deleted."""
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._claim_key(v),
                        "ConditionExpression": "id = :id",
                        "ExpressionAttributeValues": {":id": {"S": v.id}},
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": to_item({"pk": f"LLMPRICE#{v.id}", "sk": SK}),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ],
            Conflict,
        )
