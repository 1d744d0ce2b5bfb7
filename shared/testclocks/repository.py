"""Test clocks and their customers in the config table.

Keys:
- `pk=TCLOCK#<id>, sk=TCLOCK`: the clock (`frozen_time`, `status`, `target`, `customer_count`, the
  advance lease); `gsi1pk=TCLOCK, gsi1sk=<created_at>#<id>` lists clocks (they are few).
- `pk=TCLOCK#<id>, sk=CUST#<customer id>`: one member item per customer on the clock, in the
  clock's partition, so advancing reads its customers with one Query.

A customer is bound in its own create transaction (`bind_items`: ADD 1 to `customer_count` on a
clock that must exist, plus the member item) and unbound in its delete transaction; the clock's
delete is conditional on `customer_count = 0`, so a clock never disappears under a customer,
even when the two race.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.dynamo import from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.testclocks.models import ClockStatus, TestClock

CLOCK_SK = "TCLOCK"
MEMBER_PREFIX = "CUST#"


class ClockChanged(Exception):
    """A conditional write lost: the clock moved, is busy, has customers, or is gone."""


def _key(clock_id: str, sk: str = CLOCK_SK) -> dict[str, Any]:
    return to_item({"pk": f"TCLOCK#{clock_id}", "sk": sk})


def _from_record(rec: dict[str, Any]) -> TestClock:
    return TestClock(
        id=rec["id"],
        name=rec.get("name"),
        frozen_time=parse_rfc3339(rec["frozen_time"]),
        status=ClockStatus(rec["status"]),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        target_frozen_time=parse_rfc3339(rec["target"]) if rec.get("target") else None,
        customer_count=int(rec.get("customer_count") or 0),
    )


class TestClockRepository(TableRepository):
    __test__ = False

    def _update(self, clock_id: str, **kwargs: Any) -> dict[str, Any]:
        try:
            attributes: dict[str, Any] = self.client.update_item(
                TableName=self.table, Key=_key(clock_id), ReturnValues="ALL_NEW", **kwargs
            )["Attributes"]
            return attributes
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ClockChanged(clock_id) from None
            raise

    # -- clocks ----------------------------------------------------------------------------------
    def create(self, clock: TestClock) -> None:
        record = {
            "pk": f"TCLOCK#{clock.id}",
            "sk": CLOCK_SK,
            "gsi1pk": "TCLOCK",
            "gsi1sk": f"{format_rfc3339(clock.created_at)}#{clock.id}",
            "id": clock.id,
            "name": clock.name,
            "frozen_time": format_rfc3339(clock.frozen_time),
            "status": clock.status.value,
            "customer_count": 0,
            "created_at": format_rfc3339(clock.created_at),
            "updated_at": format_rfc3339(clock.updated_at),
        }
        self.client.put_item(
            TableName=self.table, Item=to_item(record), ConditionExpression="attribute_not_exists(pk)"
        )

    def get(self, clock_id: str) -> TestClock | None:
        resp = self.client.get_item(TableName=self.table, Key=_key(clock_id), ConsistentRead=True)
        return _from_record(from_item(resp["Item"])) if "Item" in resp else None

    def frozen_time(self, clock_id: str) -> datetime | None:
        """The resolver's read: one projected GetItem."""
        resp = self.client.get_item(
            TableName=self.table, Key=_key(clock_id), ConsistentRead=True, ProjectionExpression="frozen_time"
        )
        return parse_rfc3339(resp["Item"]["frozen_time"]["S"]) if "Item" in resp else None

    def list_all(self) -> list[TestClock]:
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": "TCLOCK"}},
        )
        return [_from_record(from_item(i)) for i in items]

    def delete(self, clock_id: str) -> None:
        """Only a clock without customers (ClockChanged otherwise, or when it is gone)."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_key(clock_id),
                ConditionExpression="attribute_exists(pk) AND customer_count = :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ClockChanged(clock_id) from None
            raise

    # -- advancing -------------------------------------------------------------------------------
    def start_advance(self, clock: TestClock, target: datetime, now: datetime) -> TestClock:
        """ready -> advancing towards `target`, only if nobody moved the clock since it was read."""
        attrs = self._update(
            clock.id,
            UpdateExpression="SET #s = :adv, target = :t, updated_at = :now",
            ConditionExpression="#s = :ready AND frozen_time = :f",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":adv": to_value(ClockStatus.ADVANCING.value),
                ":ready": to_value(ClockStatus.READY.value),
                ":t": to_value(format_rfc3339(target)),
                ":f": to_value(format_rfc3339(clock.frozen_time)),
                ":now": to_value(format_rfc3339(now)),
            },
        )
        return _from_record(from_item(attrs))

    def take_lease(self, clock_id: str, token: str, seconds: int) -> TestClock:
        """One runner per advancing clock: the lease expires, so a crashed runner's is taken over."""
        now = int(time.time())
        attrs = self._update(
            clock_id,
            UpdateExpression="SET lease = :tok, lease_until = :until",
            ConditionExpression="#s = :adv AND (attribute_not_exists(lease_until) OR lease_until < :now "
            "OR lease = :tok)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":tok": to_value(token),
                ":until": to_value(now + seconds),
                ":now": to_value(now),
                ":adv": to_value(ClockStatus.ADVANCING.value),
            },
        )
        return _from_record(from_item(attrs))

    def move_to(self, clock_id: str, token: str, frozen: datetime, now: datetime, seconds: int) -> None:
        """Progress: the clock now reads `frozen` (stored before that step's work runs)."""
        self._update(
            clock_id,
            UpdateExpression="SET frozen_time = :f, updated_at = :now, lease_until = :until",
            ConditionExpression="lease = :tok",
            ExpressionAttributeValues={
                ":f": to_value(format_rfc3339(frozen)),
                ":now": to_value(format_rfc3339(now)),
                ":tok": to_value(token),
                ":until": to_value(int(time.time()) + seconds),
            },
        )

    def release(self, clock_id: str, token: str) -> None:
        """Give the lease up early (out of time): the next trigger continues at once."""
        with contextlib.suppress(ClockChanged):  # (lost it already: nothing to give up)
            self._update(
                clock_id,
                UpdateExpression="REMOVE lease, lease_until",
                ConditionExpression="lease = :tok",
                ExpressionAttributeValues={":tok": to_value(token)},
            )

    def finish(self, clock_id: str, token: str, now: datetime) -> TestClock:
        attrs = self._update(
            clock_id,
            UpdateExpression="SET #s = :ready, updated_at = :now REMOVE target, lease, lease_until",
            ConditionExpression="lease = :tok",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":ready": to_value(ClockStatus.READY.value),
                ":now": to_value(format_rfc3339(now)),
                ":tok": to_value(token),
            },
        )
        return _from_record(from_item(attrs))

    # -- customers -------------------------------------------------------------------------------
    def customer_ids(self, clock_id: str) -> list[str]:
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :m)",
            ExpressionAttributeValues={":p": {"S": f"TCLOCK#{clock_id}"}, ":m": {"S": MEMBER_PREFIX}},
            ProjectionExpression="sk",
        )
        return [i["sk"]["S"][len(MEMBER_PREFIX) :] for i in items]

    def bind_items(self, clock_id: str, customer_id: str) -> list[dict[str, Any]]:
        """Transaction items binding a new customer: cancelled when the clock is gone or advancing
        (a running advance read its customers already)."""
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _key(clock_id),
                    "UpdateExpression": "ADD customer_count :one",
                    "ConditionExpression": "attribute_exists(pk) AND #s = :ready",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":ready": {"S": ClockStatus.READY.value},
                    },
                }
            },
            {"Put": {"TableName": self.table, "Item": _key(clock_id, MEMBER_PREFIX + customer_id)}},
        ]

    def unbind_items(self, clock_id: str, customer_id: str) -> list[dict[str, Any]]:
        """Transaction items releasing a deleted customer from its clock."""
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _key(clock_id),
                    "UpdateExpression": "ADD customer_count :minus",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                }
            },
            {"Delete": {"TableName": self.table, "Key": _key(clock_id, MEMBER_PREFIX + customer_id)}},
        ]
