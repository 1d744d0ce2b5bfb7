"""Channels and rules in the config table.

Keys: `pk=NCHANNEL#<id>, sk=NCHANNEL` (gsi1 `NCHANNEL` / `<created_at>#<id>` lists them) and
`pk=NRULE#<id>, sk=NRULE` (gsi1 `NRULE` / ...). A channel carries `rule_ids`, the string set of
rules using it, maintained in the same transaction as every rule write; so "a channel used by a
rule can't be deleted" is one conditional delete (`attribute_not_exists(rule_ids)`: DynamoDB drops
empty sets), race-free against a concurrent rule create.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.dynamo import from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.notifications.models import Channel, ChannelType, Rule, RuleType, Threshold, ThresholdType

CHANNEL, RULE = "NCHANNEL", "NRULE"


class ChannelInUse(Exception):
    def __init__(self, rule_ids: list[str]) -> None:
        super().__init__(", ".join(rule_ids))
        self.rule_ids = rule_ids


class WriteConflict(Exception):
    """A transaction was cancelled: `reasons` are the per-item cancellation codes."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(",".join(reasons))
        self.reasons = reasons


def _key(kind: str, item_id: str) -> dict[str, Any]:
    return to_item({"pk": f"{kind}#{item_id}", "sk": kind})


def _channel_record(c: Channel) -> dict[str, Any]:
    return {
        "id": c.id,
        "type": c.type.value,
        "name": c.name,
        "disabled": c.disabled,
        "url": c.url,
        "custom_headers": c.custom_headers or None,
        "signing_secret": c.signing_secret,
        "topic_arn": c.topic_arn,
        "labels": c.labels,
        "created_at": format_rfc3339(c.created_at),
        "updated_at": format_rfc3339(c.updated_at),
    }


def channel_from_record(rec: dict[str, Any]) -> Channel:
    return Channel(
        id=rec["id"],
        type=ChannelType(rec["type"]),
        name=rec["name"],
        disabled=bool(rec.get("disabled")),
        url=rec.get("url"),
        custom_headers=dict(rec.get("custom_headers") or {}),
        signing_secret=rec.get("signing_secret"),
        topic_arn=rec.get("topic_arn"),
        labels=rec.get("labels"),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
    )


def _rule_record(r: Rule) -> dict[str, Any]:
    return {
        "pk": f"{RULE}#{r.id}",
        "sk": RULE,
        "gsi1pk": RULE,
        "gsi1sk": f"{format_rfc3339(r.created_at)}#{r.id}",
        "id": r.id,
        "type": r.type.value,
        "name": r.name,
        "disabled": r.disabled,
        "channel_ids": r.channel_ids,
        # Decimal strings: exact round trip.
        "thresholds": [{"value": format(t.value, "f"), "type": t.type.value} for t in r.thresholds] or None,
        "features": r.features,
        "labels": r.labels,
        "created_at": format_rfc3339(r.created_at),
        "updated_at": format_rfc3339(r.updated_at),
    }


def rule_from_record(rec: dict[str, Any]) -> Rule:
    return Rule(
        id=rec["id"],
        type=RuleType(rec["type"]),
        name=rec["name"],
        disabled=bool(rec.get("disabled")),
        channel_ids=list(rec["channel_ids"]),
        thresholds=[
            Threshold(Decimal(t["value"]), ThresholdType(t["type"])) for t in rec.get("thresholds") or []
        ],
        features=list(rec["features"]) if rec.get("features") else None,
        labels=rec.get("labels"),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
    )


def _reasons(exc: ClientError) -> list[str]:
    return [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]


# Bumped by every channel and rule write: the notify function re-lists rules and channels only
# when it changed (a GetItem per domain event instead of two index queries).
VERSION_KEY = {"pk": "NOTIFYCONFIG", "sk": "VERSION"}
# Index reads are eventually consistent: a list read just after a bump could miss the write, so a
# cached list is also re-read after this many seconds.
CACHE_SECONDS = 30.0


class NotificationConfigRepository(TableRepository):
    _cache: tuple[int, float, list[Rule], list[Channel]] | None = None

    def _bump(self) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": to_item(VERSION_KEY),
                "UpdateExpression": "ADD v :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }

    def bump_version(self) -> None:
        self.client.update_item(**self._bump()["Update"])

    def version(self) -> int:
        item = self.client.get_item(TableName=self.table, Key=to_item(VERSION_KEY), ConsistentRead=True)
        return int(item.get("Item", {}).get("v", {}).get("N", "0"))

    def active_config(self) -> tuple[list[Rule], list[Channel]]:
        """Every rule and channel, re-listed only when the version moved (or the cache is old)."""
        version, now = self.version(), time.monotonic()
        cached = self._cache
        if cached is not None and cached[0] == version and now - cached[1] < CACHE_SECONDS:
            return cached[2], cached[3]
        rules, channels = self.list_rules(), self.list_channels()
        self._cache = (version, now, rules, channels)
        return rules, channels

    # -- channels --------------------------------------------------------------------------------
    def put_channel(self, channel: Channel, *, create: bool) -> bool:
        """Create, or update the fields of a live channel (never its `rule_ids`). False if gone/exists."""
        rec = _channel_record(channel)
        names = {f"#{k}": k for k in rec}
        values = {f":{k}": v for k, v in rec.items() if v is not None}
        sets = [f"#{k} = :{k}" for k, v in rec.items() if v is not None]
        removes = [f"#{k}" for k, v in rec.items() if v is None]
        if create:
            names.update({"#g1": "gsi1pk", "#g2": "gsi1sk"})
            values.update({":g1": CHANNEL, ":g2": f"{rec['created_at']}#{channel.id}"})
            sets += ["#g1 = :g1", "#g2 = :g2"]
        expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(CHANNEL, channel.id),
                UpdateExpression=expr,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_item(values),
                ConditionExpression="attribute_not_exists(pk)" if create else "attribute_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        self.bump_version()
        return True

    def get_channel(self, channel_id: str) -> Channel | None:
        item = self.client.get_item(TableName=self.table, Key=_key(CHANNEL, channel_id), ConsistentRead=True)
        return channel_from_record(from_item(item["Item"])) if "Item" in item else None

    def channel_rule_ids(self, channel_id: str) -> list[str]:
        item = self.client.get_item(TableName=self.table, Key=_key(CHANNEL, channel_id), ConsistentRead=True)
        return sorted(from_item(item.get("Item", {})).get("rule_ids") or [])

    def list_channels(self) -> list[Channel]:
        return [channel_from_record(from_item(i)) for i in self._list(CHANNEL)]

    def delete_channel(self, channel_id: str) -> bool:
        """False if it did not exist; ChannelInUse while any rule references it."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_key(CHANNEL, channel_id),
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(rule_ids)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = from_item(exc.response.get("Item") or {})
            if not old:
                return False
            raise ChannelInUse(sorted(old.get("rule_ids") or [])) from None
        self.bump_version()
        return True

    # -- rules -----------------------------------------------------------------------------------
    def _ref(self, channel_id: str, rule_id: str, op: str) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": _key(CHANNEL, channel_id),
            "UpdateExpression": f"{op} rule_ids :r",
            "ExpressionAttributeValues": {":r": {"SS": [rule_id]}},
        }
        if op == "ADD":  # the channel must exist: a rule never points at nothing
            update["ConditionExpression"] = "attribute_exists(pk)"
        return {"Update": update}

    def write_rule(self, rule: Rule, previous: Rule | None) -> None:
        """Create (previous None) or replace a rule and move its channel references, atomically.

        Item order: [rule, *added channels, *removed channels]; WriteConflict carries the reasons.
        """
        old = set(previous.channel_ids) if previous else set()
        added = [c for c in dict.fromkeys(rule.channel_ids) if c not in old]
        removed = sorted(old - set(rule.channel_ids))
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(_rule_record(rule))}
        if previous is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:  # optimistic: nobody else replaced it since we read it
            put["ConditionExpression"] = "updated_at = :u"
            put["ExpressionAttributeValues"] = to_item({":u": format_rfc3339(previous.updated_at)})
        items = [{"Put": put}]
        items += [self._ref(c, rule.id, "ADD") for c in added]
        items += [self._ref(c, rule.id, "DELETE") for c in removed]
        items.append(self._bump())
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise WriteConflict(_reasons(exc)) from exc
            raise

    def delete_rule(self, rule: Rule) -> bool:
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": _key(RULE, rule.id),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        ]
        items += [self._ref(c, rule.id, "DELETE") for c in rule.channel_ids]
        items.append(self._bump())
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def get_rule(self, rule_id: str) -> Rule | None:
        item = self.client.get_item(TableName=self.table, Key=_key(RULE, rule_id), ConsistentRead=True)
        return rule_from_record(from_item(item["Item"])) if "Item" in item else None

    def list_rules(self) -> list[Rule]:
        return [rule_from_record(from_item(i)) for i in self._list(RULE)]

    def _list(self, kind: str) -> list[dict[str, Any]]:
        return list(
            query_all(
                self.client,
                TableName=self.table,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :p",
                ExpressionAttributeValues={":p": {"S": kind}},
            )
        )
