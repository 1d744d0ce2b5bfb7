"""Features in the config table.

Keys: `pk=FEATURE#<id>, sk=FEATURE` holds the feature (live or archived); `gsi1pk=FEATURE,
gsi1sk=<created_at>#<id>` lists them (features are few: one partition is enough);
`pk=FEATUREKEY#<key>, sk=FEATUREKEY` is the uniqueness claim for the key among non-archived features,
written with the feature and released by the archive, each in one transaction. Creating a metered
feature also checks, in the same transaction, that its meter (`pk=METER#<id>, sk=METER`) is live.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.dynamo import from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.features.models import Feature, unit_cost_from_api

FEATURE_SK = "FEATURE"
KEY_SK = "FEATUREKEY"
_UNARCHIVED = "attribute_exists(pk) AND attribute_not_exists(archived_at)"


class TransactionConflict(Exception):
    """A create was cancelled: the key is taken or the meter was deleted meanwhile."""


class FeatureGone(Exception):
    """The feature was archived (or never existed) when the write landed."""


def feature_item_key(feature_id: str) -> dict[str, Any]:
    return to_item({"pk": f"FEATURE#{feature_id}", "sk": FEATURE_SK})


def key_claim_key(key: str) -> dict[str, Any]:
    return to_item({"pk": f"FEATUREKEY#{key}", "sk": KEY_SK})


def _to_record(feature: Feature) -> dict[str, Any]:
    return {
        "pk": f"FEATURE#{feature.id}",
        "sk": FEATURE_SK,
        "gsi1pk": "FEATURE",
        "gsi1sk": f"{format_rfc3339(feature.created_at)}#{feature.id}",
        "id": feature.id,
        "key": feature.key,
        "name": feature.name,
        "description": feature.description,
        "labels": feature.labels,
        "meter_id": feature.meter_id,
        "meter_filters": feature.meter_filters or None,
        # The API shape (the amount as a decimal string, so it round-trips exactly).
        "unit_cost": feature.unit_cost.to_api() if feature.unit_cost else None,
        "created_at": format_rfc3339(feature.created_at),
        "updated_at": format_rfc3339(feature.updated_at),
        "archived_at": format_rfc3339(feature.archived_at) if feature.archived_at else None,
    }


def feature_from_record(rec: dict[str, Any]) -> Feature:
    def dt(name: str) -> datetime | None:
        return parse_rfc3339(rec[name]) if rec.get(name) else None

    return Feature(
        id=rec["id"],
        key=rec["key"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        meter_id=rec.get("meter_id"),
        meter_filters=dict(rec.get("meter_filters") or {}),
        unit_cost=unit_cost_from_api(rec["unit_cost"]) if rec.get("unit_cost") else None,
        created_at=parse_rfc3339(rec["created_at"]),  # always written
        updated_at=parse_rfc3339(rec["updated_at"]),
        archived_at=dt("archived_at"),
    )


class FeatureRepository(TableRepository):
    # -- writes ----------------------------------------------------------------------------------
    def create(self, feature: Feature) -> None:
        """The feature and its key claim, atomically, only while its meter (if any) is live."""
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "Item": to_item({"pk": f"FEATUREKEY#{feature.key}", "sk": KEY_SK, "id": feature.id}),
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "Item": to_item(_to_record(feature)),
                }
            },
        ]
        if feature.meter_id is not None:
            items.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": to_item({"pk": f"METER#{feature.meter_id}", "sk": "METER"}),
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(deleted_at)",
                    }
                }
            )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise TransactionConflict(feature.key) from exc
            raise

    def update(self, feature: Feature) -> None:
        """Replace a live feature; FeatureGone if it was archived meanwhile (never resurrect it)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(_to_record(feature)),
                ConditionExpression=_UNARCHIVED,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise FeatureGone(feature.id) from exc
            raise

    def archive(self, feature: Feature) -> None:
        """Write the archived feature and release its key, atomically; FeatureGone if already archived."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(_to_record(feature)),
                            "ConditionExpression": _UNARCHIVED,
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": key_claim_key(feature.key),
                            "ConditionExpression": "attribute_not_exists(pk) OR id = :id",
                            "ExpressionAttributeValues": {":id": to_value(feature.id)},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise FeatureGone(feature.id) from exc
            raise

    # -- reads -----------------------------------------------------------------------------------
    def get(self, feature_id: str) -> Feature | None:
        """By id, archived or not."""
        resp = self.client.get_item(
            TableName=self.table, Key=feature_item_key(feature_id), ConsistentRead=True
        )
        return feature_from_record(from_item(resp["Item"])) if "Item" in resp else None

    def id_for_key(self, key: str) -> str | None:
        """The id of the non-archived feature holding `key`."""
        resp = self.client.get_item(TableName=self.table, Key=key_claim_key(key), ConsistentRead=True)
        return str(from_item(resp["Item"])["id"]) if "Item" in resp else None

    def active_by_key(self, key: str) -> Feature | None:
        """The non-archived feature with `key`."""
        feature_id = self.id_for_key(key)
        feature = self.get(feature_id) if feature_id else None
        return feature if feature is not None and feature.archived_at is None else None

    def list_all(self, include_archived: bool = False) -> list[Feature]:
        """Oldest first."""
        kwargs: dict[str, Any] = {}
        if not include_archived:
            kwargs["FilterExpression"] = "attribute_not_exists(archived_at)"
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": "FEATURE"}},
            **kwargs,
        )
        return [feature_from_record(from_item(i)) for i in items]

    def live_features_for_meter(self, meter_id: str) -> list[Feature]:
        """The non-archived features based on this meter, oldest first."""
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            FilterExpression="meter_id = :m AND attribute_not_exists(archived_at)",
            ExpressionAttributeValues={":p": {"S": "FEATURE"}, ":m": to_value(meter_id)},
        )
        return [feature_from_record(from_item(i)) for i in items]
