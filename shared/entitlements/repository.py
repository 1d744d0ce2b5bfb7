"""Entitlements, their grants and resets in the config table.

Keys:
- `pk=ENT#<id>, sk=ENT`: the entitlement (live or soft-deleted), its manual resets as a list, and
  `last_reset_at` (every reset is conditional on being later than it, so two resets can never share
  a minute); `gsi1pk=CUSTENT#<customer_id>, gsi1sk=<feature_key>#<created_at>#<id>` lists a
  customer's entitlements by feature and finds the one for a feature key.
- `pk=ENT#<id>, sk=GRANT#<grant_id>`: its grants (immutable but for `voided_at`), in the
  entitlement's partition so one Query reads the entitlement with its grants.
- `pk=ENTCLAIM#<customer_id>#<feature_id>, sk=ENTCLAIM`: "one active entitlement per customer and
  feature", holding `entitlement_id`; written with the entitlement, released by its deletion, each in
  one transaction.
- `pk=ENTKEYCLAIM#<customer_id>#<feature_key>, sk=ENTCLAIM`: the same per feature key, written and
  released alongside: an archived feature's key can go to a new feature while entitlements of the
  old one stay active, and entitlements are looked up (and their access stored) by feature key.
- `pk=METERENT#<meter_id>, sk=<customer_id>#<entitlement_id>` (metered only): the real-time path
  finds the entitlements a usage batch touched (meter, customers) without scanning.
- `pk=ENTMETERED#<0..7>, sk=<entitlement_id>` (metered only): the scheduled reset sweep's list,
  split eight ways so no partition holds every entitlement.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from botocore.exceptions import ClientError

from shared.aws.dynamo import batch_get, from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_optional, format_rfc3339, parse_optional, parse_rfc3339
from shared.entitlements.models import Entitlement, EntitlementType, GrantRecord, ResetRecord

ENT_SK = "ENT"
CLAIM_SK = "ENTCLAIM"
METERED_SHARDS = 8
# Above this many customers one Query of the meter's whole index partition beats one per customer.
_PER_CUSTOMER_QUERIES = 16


class ClaimTaken(Exception):
    """Create cancelled: the (customer, feature) claim is held or the feature was archived meanwhile."""


class EntitlementGone(Exception):
    """The entitlement was deleted (or never existed) when the write landed."""


class ResetConflict(Exception):
    """The entitlement already has a reset at or after this one (or it was deleted)."""


class AlreadyVoided(Exception):
    """The grant is already voided (or does not exist)."""


def ent_key(entitlement_id: str) -> dict[str, Any]:
    return to_item({"pk": f"ENT#{entitlement_id}", "sk": ENT_SK})


def claim_key(customer_id: str, feature_id: str) -> dict[str, Any]:
    return to_item({"pk": f"ENTCLAIM#{customer_id}#{feature_id}", "sk": CLAIM_SK})


def key_claim_key(customer_id: str, feature_key: str) -> dict[str, Any]:
    return to_item({"pk": f"ENTKEYCLAIM#{customer_id}#{feature_key}", "sk": CLAIM_SK})


def meter_index_key(ent: Entitlement) -> dict[str, Any]:
    return to_item({"pk": f"METERENT#{ent.meter_id}", "sk": f"{ent.customer_id}#{ent.id}"})


def metered_shard(entitlement_id: str) -> int:
    return zlib.crc32(entitlement_id.encode()) % METERED_SHARDS


def metered_marker_key(entitlement_id: str) -> dict[str, Any]:
    return to_item({"pk": f"ENTMETERED#{metered_shard(entitlement_id)}", "sk": entitlement_id})


def _ent_record(ent: Entitlement) -> dict[str, Any]:
    return {
        "pk": f"ENT#{ent.id}",
        "sk": ENT_SK,
        "gsi1pk": f"CUSTENT#{ent.customer_id}",
        "gsi1sk": f"{ent.feature_key}#{format_rfc3339(ent.created_at)}#{ent.id}",
        "id": ent.id,
        "type": ent.type.value,
        "customer_id": ent.customer_id,
        "feature_id": ent.feature_id,
        "feature_key": ent.feature_key,
        "meter_id": ent.meter_id,
        "usage_period_interval": ent.usage_period_interval,
        "usage_period_anchor": format_optional(ent.usage_period_anchor),
        "measure_usage_from": format_optional(ent.measure_usage_from),
        "is_soft_limit": ent.is_soft_limit,
        "preserve_overage_at_reset": ent.preserve_overage_at_reset,
        "issue_after_reset": ent.issue_after_reset,
        "issue_after_reset_priority": ent.issue_after_reset_priority,
        "resets": [r.to_record() for r in ent.resets],
        "last_reset_at": format_optional(ent.resets[-1].at) if ent.resets else None,
        # Arbitrary JSON (floats included) is kept as text: DynamoDB numbers are decimals only.
        "config": orjson.dumps(ent.config).decode() if ent.config is not None else None,
        "metadata": ent.metadata,
        "created_at": format_rfc3339(ent.created_at),
        "updated_at": format_rfc3339(ent.updated_at),
        "deleted_at": format_optional(ent.deleted_at),
    }


def entitlement_from_record(rec: dict[str, Any]) -> Entitlement:
    resets = [
        ResetRecord(
            at=parse_rfc3339(r["at"]),
            preserve_overage=bool(r["preserve_overage"]),
            retain_anchor=bool(r["retain_anchor"]),
        )
        for r in rec.get("resets") or []
    ]
    return Entitlement(
        id=rec["id"],
        type=EntitlementType(rec["type"]),
        customer_id=rec["customer_id"],
        feature_id=rec["feature_id"],
        feature_key=rec["feature_key"],
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        meter_id=rec.get("meter_id"),
        usage_period_interval=rec.get("usage_period_interval"),
        usage_period_anchor=parse_optional(rec.get("usage_period_anchor")),
        measure_usage_from=parse_optional(rec.get("measure_usage_from")),
        is_soft_limit=bool(rec.get("is_soft_limit")),
        preserve_overage_at_reset=bool(rec.get("preserve_overage_at_reset")),
        issue_after_reset=Decimal(rec["issue_after_reset"])
        if rec.get("issue_after_reset") is not None
        else None,
        issue_after_reset_priority=int(rec.get("issue_after_reset_priority") or 1),
        resets=sorted(resets, key=lambda r: r.at),
        config=orjson.loads(rec["config"]) if rec.get("config") is not None else None,
        metadata=dict(rec["metadata"]) if rec.get("metadata") is not None else None,
        deleted_at=parse_optional(rec.get("deleted_at")),
    )


def _grant_record(grant: GrantRecord) -> dict[str, Any]:
    return {
        "pk": f"ENT#{grant.entitlement_id}",
        "sk": f"GRANT#{grant.id}",
        "id": grant.id,
        "entitlement_id": grant.entitlement_id,
        "amount": grant.amount,
        "priority": grant.priority,
        "effective_at": format_rfc3339(grant.effective_at),
        "created_at": format_rfc3339(grant.created_at),
        "expires_at": format_optional(grant.expires_at),
        "voided_at": format_optional(grant.voided_at),
        "min_rollover_amount": grant.min_rollover_amount,
        "max_rollover_amount": grant.max_rollover_amount,
        "recurrence_interval": grant.recurrence_interval,
        "recurrence_anchor": format_optional(grant.recurrence_anchor),
        "metadata": grant.metadata,
        "annotations": orjson.dumps(grant.annotations).decode() if grant.annotations else None,
    }


def grant_from_record(rec: dict[str, Any]) -> GrantRecord:
    return GrantRecord(
        id=rec["id"],
        entitlement_id=rec["entitlement_id"],
        amount=Decimal(rec["amount"]),
        priority=int(rec["priority"]),
        effective_at=parse_rfc3339(rec["effective_at"]),
        created_at=parse_rfc3339(rec["created_at"]),
        expires_at=parse_optional(rec.get("expires_at")),
        voided_at=parse_optional(rec.get("voided_at")),
        min_rollover_amount=Decimal(rec.get("min_rollover_amount") or 0),
        max_rollover_amount=Decimal(rec["max_rollover_amount"])
        if rec.get("max_rollover_amount") is not None
        else None,
        recurrence_interval=rec.get("recurrence_interval"),
        recurrence_anchor=parse_optional(rec.get("recurrence_anchor")),
        metadata=dict(rec["metadata"]) if rec.get("metadata") is not None else None,
        annotations=orjson.loads(rec["annotations"]) if rec.get("annotations") else {},
    )


class EntitlementRepository(TableRepository):
    # -- writes ----------------------------------------------------------------------------------
    def create(
        self, ent: Entitlement, grants: Iterable[GrantRecord] = (), feature_pk: str | None = None
    ) -> None:
        """The entitlement, its claim, its index items and initial grants, atomically.

        ClaimTaken when the customer already has an active entitlement for the feature, or when
        `feature_pk` is given and that feature item was archived meanwhile.
        """
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(
                        {
                            "pk": f"ENTCLAIM#{ent.customer_id}#{ent.feature_id}",
                            "sk": CLAIM_SK,
                            "entitlement_id": ent.id,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **key_claim_key(ent.customer_id, ent.feature_key),
                        "entitlement_id": to_value(ent.id),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(_ent_record(ent)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if ent.type == EntitlementType.METERED and ent.meter_id:
            index = {
                **from_item(meter_index_key(ent)),
                "entitlement_id": ent.id,
                "customer_id": ent.customer_id,
            }
            marker = {**from_item(metered_marker_key(ent.id)), "customer_id": ent.customer_id}
            items.append({"Put": {"TableName": self.table, "Item": to_item(index)}})
            items.append({"Put": {"TableName": self.table, "Item": to_item(marker)}})
        items += [{"Put": {"TableName": self.table, "Item": to_item(_grant_record(g))}} for g in grants]
        if feature_pk is not None:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": to_item({"pk": feature_pk, "sk": "FEATURE"}),
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(archived_at)",
                    }
                }
            )
        self._transact(items, ClaimTaken)

    def soft_delete(self, ent: Entitlement, deleted_at: datetime) -> None:
        """Mark deleted and release the claim and index items, atomically; EntitlementGone if already."""
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": ent_key(ent.id),
                    "UpdateExpression": "SET deleted_at = :d, updated_at = :d",
                    "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(deleted_at)",
                    "ExpressionAttributeValues": {":d": to_value(format_rfc3339(deleted_at))},
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": claim_key(ent.customer_id, ent.feature_id),
                    "ConditionExpression": "attribute_not_exists(pk) OR entitlement_id = :e",
                    "ExpressionAttributeValues": {":e": to_value(ent.id)},
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": key_claim_key(ent.customer_id, ent.feature_key),
                    "ConditionExpression": "attribute_not_exists(pk) OR entitlement_id = :e",
                    "ExpressionAttributeValues": {":e": to_value(ent.id)},
                }
            },
        ]
        if ent.type == EntitlementType.METERED and ent.meter_id:
            items.append({"Delete": {"TableName": self.table, "Key": meter_index_key(ent)}})
            items.append({"Delete": {"TableName": self.table, "Key": metered_marker_key(ent.id)}})
        self._transact(items, EntitlementGone)

    def add_reset(self, ent: Entitlement, reset: ResetRecord, now: datetime) -> None:
        """Append a reset; ResetConflict unless it is later than every earlier one and the entitlement
        is live."""
        at = format_rfc3339(reset.at)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ent_key(ent.id),
                UpdateExpression=(
                    "SET resets = list_append(if_not_exists(resets, :empty), :r), last_reset_at = :at, "
                    "updated_at = :now"
                ),
                ConditionExpression=(
                    "attribute_exists(pk) AND attribute_not_exists(deleted_at) "
                    "AND (attribute_not_exists(last_reset_at) OR last_reset_at < :at)"
                ),
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":r": to_value([reset.to_record()]),
                    ":at": to_value(at),
                    ":now": to_value(format_rfc3339(now)),
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ResetConflict(ent.id) from exc
            raise

    def put_grant(self, grant: GrantRecord) -> None:
        """Add a grant to a live entitlement; EntitlementGone if it was deleted meanwhile."""
        self._transact(
            [
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": ent_key(grant.entitlement_id),
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(deleted_at)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_grant_record(grant)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
            EntitlementGone,
        )

    def void_grant(self, grant: GrantRecord, at: datetime) -> None:
        """Set `voided_at` once; AlreadyVoided if it is already set (or the grant is gone)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=to_item({"pk": f"ENT#{grant.entitlement_id}", "sk": f"GRANT#{grant.id}"}),
                UpdateExpression="SET voided_at = :v",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(voided_at)",
                ExpressionAttributeValues={":v": to_value(format_rfc3339(at))},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AlreadyVoided(grant.id) from exc
            raise

    # -- reads -----------------------------------------------------------------------------------
    def get(self, entitlement_id: str) -> Entitlement | None:
        """By id, live or deleted."""
        resp = self.client.get_item(TableName=self.table, Key=ent_key(entitlement_id), ConsistentRead=True)
        return entitlement_from_record(from_item(resp["Item"])) if "Item" in resp else None

    def get_with_grants(self, entitlement_id: str) -> tuple[Entitlement | None, list[GrantRecord]]:
        """The entitlement and its grants (oldest first) in one Query."""
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": to_value(f"ENT#{entitlement_id}")},
            ConsistentRead=True,
        )
        ent: Entitlement | None = None
        grants: list[GrantRecord] = []
        for item in items:
            rec = from_item(item)
            if rec["sk"] == ENT_SK:
                ent = entitlement_from_record(rec)
            elif rec["sk"].startswith("GRANT#"):
                grants.append(grant_from_record(rec))
        return ent, grants

    def grants(self, entitlement_id: str) -> list[GrantRecord]:
        """Every grant of the entitlement (voided ones included), oldest first."""
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :g)",
            ExpressionAttributeValues={":p": to_value(f"ENT#{entitlement_id}"), ":g": to_value("GRANT#")},
            ConsistentRead=True,
        )
        return [grant_from_record(from_item(i)) for i in items]

    def get_grant(self, entitlement_id: str, grant_id: str) -> GrantRecord | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"ENT#{entitlement_id}", "sk": f"GRANT#{grant_id}"}),
            ConsistentRead=True,
        )
        return grant_from_record(from_item(resp["Item"])) if "Item" in resp else None

    def claim_holder(self, customer_id: str, feature_id: str, feature_key: str | None = None) -> str | None:
        """The id of the active entitlement of this customer for this feature (or, given
        `feature_key`, for another feature that had that key)."""
        keys = [claim_key(customer_id, feature_id)]
        if feature_key is not None:
            keys.append(key_claim_key(customer_id, feature_key))
        for key in keys:
            resp = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            if "Item" in resp:
                return str(from_item(resp["Item"])["entitlement_id"])
        return None

    def for_customer(self, customer_id: str, feature_key: str | None = None) -> list[Entitlement]:
        """The customer's active entitlements (of one feature key if given), by feature key."""
        condition = "gsi1pk = :p"
        values: dict[str, Any] = {":p": to_value(f"CUSTENT#{customer_id}")}
        if feature_key is not None:
            condition += " AND begins_with(gsi1sk, :k)"
            values[":k"] = to_value(f"{feature_key}#")
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression=condition,
            FilterExpression="attribute_not_exists(deleted_at)",
            ExpressionAttributeValues=values,
        )
        return [entitlement_from_record(from_item(i)) for i in items]

    def _batch_entitlements(self, ids: list[str]) -> list[Entitlement]:
        items = batch_get(self.client, self.table, [ent_key(i) for i in dict.fromkeys(ids)])
        found = {e.id: e for e in (entitlement_from_record(from_item(i)) for i in items)}
        return [found[i] for i in dict.fromkeys(ids) if i in found and found[i].deleted_at is None]

    def for_meter_customers(self, meter_id: str, customer_ids: Iterable[str]) -> list[Entitlement]:
        """The active metered entitlements of these customers on this meter."""
        wanted = list(dict.fromkeys(customer_ids))
        if not wanted:
            return []
        pk = to_value(f"METERENT#{meter_id}")
        if len(wanted) <= _PER_CUSTOMER_QUERIES:
            items: list[dict[str, Any]] = []
            for customer_id in wanted:
                items += query_all(
                    self.client,
                    TableName=self.table,
                    KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
                    ExpressionAttributeValues={":p": pk, ":c": to_value(f"{customer_id}#")},
                )
        else:
            chosen = set(wanted)
            items = [
                i
                for i in query_all(
                    self.client,
                    TableName=self.table,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": pk},
                )
                if i["sk"]["S"].split("#", 1)[0] in chosen
            ]
        return self._batch_entitlements([i["sk"]["S"].split("#", 1)[1] for i in items])

    def all_metered(self) -> Iterator[Entitlement]:
        """Every active metered entitlement (the reset sweep), 100 per BatchGetItem."""
        for shard in range(METERED_SHARDS):
            ids = [
                from_item(i)["sk"]
                for i in query_all(
                    self.client,
                    TableName=self.table,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": to_value(f"ENTMETERED#{shard}")},
                )
            ]
            for start in range(0, len(ids), 100):
                yield from self._batch_entitlements(ids[start : start + 100])
