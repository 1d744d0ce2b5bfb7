"""Stored access state: what `GET /customers/{id}/entitlement-access` reads in one Query.

Item: pk = "ACCESS#<customer_id>", sk = "FEAT#<feature_key>"; the last computed value of the
customer's active entitlement for that feature, the usage period it belongs to, and a snapshot of
the balances at that period's start so the next refresh replays only the current period.

A metered state is also in gsi1 under `ACCESSDUE#<0..7>`, sorted by the end of its period: the
reset sweep reads only the states whose period has ended, not every entitlement. States of a
customer on a test clock are not: advancing the clock resets them (shared/testclocks).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from botocore.exceptions import ClientError

from shared.aws.dynamo import from_item, query_all, to_item
from shared.core.decimals import wire
from shared.core.timeutil import format_optional, parse_optional, parse_rfc3339
from shared.events.keys import sortable

DUE_PREFIX = "ACCESSDUE#"
DUE_SHARDS = 8


@dataclass
class AccessState:
    customer_id: str
    feature_key: str
    feature_id: str
    entitlement_id: str
    type: str
    has_access: bool
    computed_at: datetime
    config: str | None = None
    balance: Decimal = Decimal(0)
    usage: Decimal = Decimal(0)
    overage: Decimal = Decimal(0)
    total_available: Decimal = Decimal(0)
    grant_balances: dict[str, Decimal] = field(default_factory=dict)
    period_from: datetime | None = None
    period_to: datetime | None = None
    last_reset: datetime | None = None
    snapshot: dict[str, Any] | None = None  # engine Snapshot, serialised
    # The customer's test clock (set at creation, never changed): its states stay out of the due
    # index, since its time moves only when the clock is advanced.
    test_clock_id: str | None = None

    def value(self) -> dict[str, Any]:
        """The entitlement value as published in domain events (decimal strings, RFC 3339)."""
        return {
            "has_access": self.has_access,
            "balance": wire(self.balance),
            "usage": wire(self.usage),
            "overage": wire(self.overage),
            "total_available_grant_amount": wire(self.total_available),
            "grant_balances": {k: wire(v) for k, v in sorted(self.grant_balances.items())},
            "current_usage_period": {
                "from": format_optional(self.period_from),
                "to": format_optional(self.period_to),
            }
            if self.period_from
            else None,
        }


class AccessStore:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def _key(self, customer_id: str, feature_key: str) -> dict[str, Any]:
        return {"pk": {"S": f"ACCESS#{customer_id}"}, "sk": {"S": f"FEAT#{feature_key}"}}

    def get(self, customer_id: str, feature_key: str) -> AccessState | None:
        resp = self.client.get_item(
            TableName=self.table, Key=self._key(customer_id, feature_key), ConsistentRead=True
        )
        return self._from_item(resp["Item"]) if "Item" in resp else None

    def states(self, customer_id: str) -> list[AccessState]:
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"ACCESS#{customer_id}"}},
        )
        return [self._from_item(i) for i in items]

    def due(self, now: datetime) -> Iterator[tuple[str, str]]:
        """(customer id, entitlement id) of every metered state whose usage period ended by `now`."""
        for shard in range(DUE_SHARDS):
            items = query_all(
                self.client,
                TableName=self.table,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :p AND gsi1sk < :now",
                ExpressionAttributeValues={
                    ":p": {"S": f"{DUE_PREFIX}{shard}"},
                    ":now": {"S": sortable(now) + "#~"},
                },
            )
            for item in items:
                yield item["pk"]["S"].split("#", 1)[1], item["entitlement_id"]["S"]

    def put(self, state: AccessState) -> bool:
        """Write unless a computation that started later already wrote (shards race benignly)."""
        due = state.period_to is not None and state.test_clock_id is None
        record = {
            "pk": f"ACCESS#{state.customer_id}",
            "sk": f"FEAT#{state.feature_key}",
            "gsi1pk": f"{DUE_PREFIX}{zlib.crc32(state.entitlement_id.encode()) % DUE_SHARDS}"
            if due
            else None,
            "gsi1sk": f"{sortable(state.period_to)}#{state.customer_id}#{state.feature_key}"
            if state.period_to is not None
            else None,
            "feature_id": state.feature_id,
            "entitlement_id": state.entitlement_id,
            "type": state.type,
            "has_access": state.has_access,
            "config": state.config,
            "balance": state.balance,
            "usage": state.usage,
            "overage": state.overage,
            "total_available": state.total_available,
            "grant_balances": state.grant_balances or None,
            "period_from": format_optional(state.period_from),
            "period_to": format_optional(state.period_to),
            "last_reset": format_optional(state.last_reset),
            "computed_at": sortable(state.computed_at),
            "snapshot": orjson.dumps(state.snapshot, default=str).decode() if state.snapshot else None,
            "test_clock_id": state.test_clock_id,
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(pk) OR computed_at <= :c OR entitlement_id <> :e",
                ExpressionAttributeValues={
                    ":c": {"S": record["computed_at"]},
                    ":e": {"S": state.entitlement_id},
                },
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def delete(self, customer_id: str, feature_key: str, entitlement_id: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=self._key(customer_id, feature_key),
                ConditionExpression="entitlement_id = :e",
                ExpressionAttributeValues={":e": {"S": entitlement_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    @staticmethod
    def _from_item(item: dict[str, Any]) -> AccessState:
        rec = from_item(item)
        return AccessState(
            customer_id=rec["pk"].split("#", 1)[1],
            feature_key=rec["sk"].split("#", 1)[1],
            feature_id=rec.get("feature_id", ""),
            entitlement_id=rec["entitlement_id"],
            type=rec["type"],
            has_access=bool(rec["has_access"]),
            computed_at=parse_rfc3339(rec["computed_at"]),
            config=rec.get("config"),
            balance=Decimal(rec.get("balance", 0)),
            usage=Decimal(rec.get("usage", 0)),
            overage=Decimal(rec.get("overage", 0)),
            total_available=Decimal(rec.get("total_available", 0)),
            grant_balances={k: Decimal(v) for k, v in (rec.get("grant_balances") or {}).items()},
            period_from=parse_optional(rec.get("period_from")),
            period_to=parse_optional(rec.get("period_to")),
            last_reset=parse_optional(rec.get("last_reset")),
            snapshot=orjson.loads(rec["snapshot"]) if rec.get("snapshot") else None,
            test_clock_id=rec.get("test_clock_id"),
        )
