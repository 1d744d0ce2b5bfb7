"""Meters in the config table.

Keys: `pk=METER#<id>, sk=METER` holds the meter; `gsi1pk=METER, gsi1sk=<created_at>#<id>` lists
them (meters are few: one partition is enough); `pk=METERKEY#<key>, sk=METERKEY` is the
uniqueness claim for the key among live meters, written in the same transaction as the meter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from ulid import ULID

from shared.aws.dynamo import from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.core.timeutil import EARLIEST_INSTANT, format_rfc3339, parse_stored
from shared.meters.jsonpath import validate_path
from shared.meters.models import Aggregation, Meter

logger = Logger(service="meterline-meters", child=True)


class DuplicateKey(Exception):
    pass


class MeterGone(Exception):
    """The meter was deleted (or never existed) when the write landed."""


def _to_record(meter: Meter) -> dict[str, Any]:
    return {
        "pk": f"METER#{meter.id}",
        "sk": "METER",
        "gsi1pk": "METER",
        "gsi1sk": f"{format_rfc3339(meter.created_at)}#{meter.id}",
        "id": meter.id,
        "key": meter.key,
        "name": meter.name,
        "description": meter.description,
        "labels": meter.labels,
        "aggregation": meter.aggregation.value,
        "event_type": meter.event_type,
        "events_from": format_rfc3339(meter.events_from) if meter.events_from else None,
        "value_property": meter.value_property,
        "dimensions": meter.dimensions,
        "created_at": format_rfc3339(meter.created_at),
        "updated_at": format_rfc3339(meter.updated_at),
        "deleted_at": format_rfc3339(meter.deleted_at) if meter.deleted_at else None,
        # Fields that could not be read are written back as they were, never silently dropped.
        **meter.unread,
    }


def meter_from_record(rec: dict[str, Any]) -> Meter:
    """A stored meter, read defensively: a field this code can't parse (data from an older release,
    a hand edit) is recorded in `problems` instead of failing every read of every meter."""
    problems: dict[str, str] = {}
    unread: dict[str, Any] = {}

    def dt(name: str) -> datetime | None:
        raw = rec.get(name)
        if not raw:
            return None
        try:
            return parse_stored(raw)
        except ValueError:
            problems[name] = f"stored value {str(raw)[:64]!r} is not an RFC 3339 date-time"
            unread[name] = raw
            return None

    def path(name: str, expr: Any) -> None:
        if not isinstance(expr, str) or validate_path(expr):
            problems[name] = f"stored JSONPath {str(expr)[:64]!r} can't be evaluated"

    created_at = dt("created_at") or _ulid_time(rec["id"])
    updated_at = dt("updated_at") or created_at
    deleted_at = dt("deleted_at")
    if deleted_at is None and rec.get("deleted_at"):
        deleted_at = updated_at  # marked deleted, at an unreadable time: still deleted
    if rec.get("value_property") is not None:
        path("value_property", rec["value_property"])
    dimensions = rec.get("dimensions") or {}
    for name, expr in dimensions.items():
        path(f"dimensions.{name}", expr)
    meter = Meter(
        id=rec["id"],
        key=rec["key"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        aggregation=Aggregation(rec["aggregation"]),
        event_type=rec["event_type"],
        events_from=dt("events_from"),
        value_property=rec.get("value_property"),
        dimensions=dict(dimensions),
        created_at=created_at,
        updated_at=updated_at,
        deleted_at=deleted_at,
        problems=problems,
        unread={k: v for k, v in unread.items() if k == "events_from"},
    )
    if problems:
        logger.warning("meter has unreadable stored fields", extra={"meter": meter.key, "problems": problems})
    return meter


def _readable(rec: dict[str, Any]) -> Meter | None:
    """Last resort for a record missing what a meter can't do without (key, a known aggregation):
    logged and left out, so it can't take every other meter's reads down with it."""
    try:
        return meter_from_record(rec)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        logger.error("unreadable meter record skipped", extra={"pk": rec.get("pk"), "error": repr(exc)})
        return None


def _ulid_time(value: str) -> datetime:
    try:
        return ULID.from_str(value).datetime
    except ValueError:
        return EARLIEST_INSTANT


class MeterRepository(TableRepository):
    def create(self, meter: Meter) -> None:
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "Item": to_item(
                                {"pk": f"METERKEY#{meter.key}", "sk": "METERKEY", "id": meter.id}
                            ),
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "Item": to_item(_to_record(meter)),
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise DuplicateKey(meter.key) from exc
            raise

    def update(self, meter: Meter) -> None:
        """Replace a live meter; MeterGone if it was deleted meanwhile (never resurrect it)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(_to_record(meter)),
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(deleted_at)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise MeterGone(meter.id) from exc
            raise

    def soft_delete(self, meter: Meter) -> None:
        """Mark deleted and release the key, atomically; MeterGone if already deleted."""
        try:
            self._soft_delete(meter)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise MeterGone(meter.id) from exc
            raise

    def _soft_delete(self, meter: Meter) -> None:
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_to_record(meter)),
                        "ConditionExpression": "attribute_not_exists(deleted_at)",
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": to_item({"pk": f"METERKEY#{meter.key}", "sk": "METERKEY"}),
                    }
                },
            ]
        )

    def get(self, meter_id: str) -> Meter | None:
        resp = self.client.get_item(
            TableName=self.table, Key=to_item({"pk": f"METER#{meter_id}", "sk": "METER"}), ConsistentRead=True
        )
        return _readable(from_item(resp["Item"])) if "Item" in resp else None

    def id_for_key(self, key: str) -> str | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"METERKEY#{key}", "sk": "METERKEY"}),
            ConsistentRead=True,
        )
        return str(from_item(resp["Item"])["id"]) if "Item" in resp else None

    def list_all(self, include_deleted: bool = False) -> list[Meter]:
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": "METER"}},
        )
        meters = [m for i in items if (m := _readable(from_item(i))) is not None]
        return [m for m in meters if include_deleted or m.deleted_at is None]
