"""Subscriptions in the config table (docs/architecture.md "Subscriptions").

`SUB#<id> / SUB` is one subscription (gsi1 `SUB` / `<created_at>#<id>` lists them all). Its customer's
timeline `SUBCUST#<customer> / SUBCUST` lists the customer's subscriptions as spans `[from, to)` and
carries a `rev`: every write of any of the customer's subscriptions is one transaction that puts the
subscription(s) and the timeline conditional on the `rev` that was read. So two concurrent creates
for one customer cannot both pass the overlap check (the loser's transaction is cancelled, it re-reads
and sees the winner), and a cancel, a change or `run_due` never races another write of that customer.

Invoicing's sync index. The timeline is also the customer's entry in the sparse `SUBSYNC` index (gsi1
`SUBSYNC` / `<sync due at>#<customer>`): every write of the customer's subscriptions puts it due at
once (`SYNC_NOW`, before any instant), in the same transaction, so a change can never be missed;
invoicing's sync then moves it to the next instant the customer's billables change by time alone
(`mark_synced`, conditional on the `rev` the sync read: a write that came in meanwhile keeps it due),
or out of the index when nothing more will change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from shared.aws.dynamo import batch_get, from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_optional, parse_rfc3339
from shared.subscriptions.models import (
    PhaseSpan,
    QuantitySegment,
    SettlementMode,
    Span,
    Subscription,
    SubscriptionAddon,
)

SYNC_INDEX = "SUBSYNC"
SYNC_NOW = "0000-00-00T00:00:00.000000Z"  # sorts before every instant: due at any `until`


def _sortable(value: datetime) -> str:
    """Fixed width (microseconds always), so index keys sort and compare in time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TimelineChanged(Exception):
    """A conditional write lost: the customer's timeline moved on since it was read."""


def _opt(value: Any) -> str | None:
    return format_rfc3339(value) if value is not None else None


def record(s: Subscription) -> dict[str, Any]:
    return {
        "id": s.id,
        "customer_id": s.customer_id,
        "plan_id": s.plan_id,
        "plan_key": s.plan_key,
        "plan_version": s.plan_version,
        "currency": s.currency,
        "billing_cadence": s.billing_cadence,
        "anchor_origin": format_rfc3339(s.anchor_origin),
        "billing_anchor": format_rfc3339(s.billing_anchor),
        "active_from": format_rfc3339(s.active_from),
        "active_to": _opt(s.active_to),
        "phases": orjson.dumps([{"key": p.key, "start": format_rfc3339(p.start)} for p in s.phases]).decode(),
        "created_at": format_rfc3339(s.created_at),
        "updated_at": format_rfc3339(s.updated_at),
        "labels": s.labels,
        "settlement_mode": s.settlement_mode.value,
        "applied": s.applied,
        "entitlements": s.entitlements or None,
        "keep_usage_since": _opt(s.keep_usage_since),
    }


def from_record(rec: dict[str, Any]) -> Subscription:
    return Subscription(
        id=rec["id"],
        customer_id=rec["customer_id"],
        plan_id=rec["plan_id"],
        plan_key=rec["plan_key"],
        plan_version=int(rec["plan_version"]),
        currency=rec["currency"],
        billing_cadence=rec["billing_cadence"],
        anchor_origin=parse_rfc3339(rec["anchor_origin"]),
        billing_anchor=parse_rfc3339(rec["billing_anchor"]),
        active_from=parse_rfc3339(rec["active_from"]),
        active_to=parse_optional(rec.get("active_to")),
        phases=tuple(PhaseSpan(p["key"], parse_rfc3339(p["start"])) for p in orjson.loads(rec["phases"])),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        labels=rec.get("labels"),
        settlement_mode=SettlementMode(rec.get("settlement_mode", SettlementMode.CREDIT_THEN_INVOICE)),
        applied=rec.get("applied"),
        entitlements=dict(rec.get("entitlements") or {}),
        keep_usage_since=parse_optional(rec.get("keep_usage_since")),
    )


def addon_record(a: SubscriptionAddon) -> dict[str, Any]:
    return {
        "id": a.id,
        "subscription_id": a.subscription_id,
        "addon_id": a.addon_id,
        "name": a.name,
        "description": a.description,
        "labels": a.labels,
        "segments": orjson.dumps(
            [{"start": format_rfc3339(s.start), "quantity": s.quantity} for s in a.segments]
        ).decode(),
        "created_at": format_rfc3339(a.created_at),
        "updated_at": format_rfc3339(a.updated_at),
    }


def addon_from_record(rec: dict[str, Any]) -> SubscriptionAddon:
    return SubscriptionAddon(
        id=rec["id"],
        subscription_id=rec["subscription_id"],
        addon_id=rec["addon_id"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        segments=tuple(
            QuantitySegment(parse_rfc3339(s["start"]), int(s["quantity"]))
            for s in orjson.loads(rec["segments"])
        ),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
    )


class SubscriptionRepository(TableRepository):
    @staticmethod
    def _key(sub_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"SUB#{sub_id}"}, "sk": {"S": "SUB"}}

    @staticmethod
    def _timeline_key(customer_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"SUBCUST#{customer_id}"}, "sk": {"S": "SUBCUST"}}

    # -- reads -----------------------------------------------------------------------------------
    def get(self, sub_id: str) -> Subscription | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(sub_id), ConsistentRead=True)
        return from_record(from_item(resp["Item"])) if "Item" in resp else None

    def _timeline(self, customer_id: str) -> tuple[list[Span], int, str | None]:
        resp = self.client.get_item(
            TableName=self.table, Key=self._timeline_key(customer_id), ConsistentRead=True
        )
        if "Item" not in resp:
            return [], 0, None
        rec = from_item(resp["Item"])
        spans = [
            Span(s["id"], parse_rfc3339(s["from"]), parse_optional(s.get("to")))
            for s in orjson.loads(rec["spans"])
        ]
        return spans, int(rec["rev"]), rec.get("gsi1sk")

    def timeline(self, customer_id: str) -> tuple[list[Span], int]:
        """The customer's spans and the timeline's revision (0: none written yet)."""
        spans, rev, _ = self._timeline(customer_id)
        return spans, rev

    def for_customer(self, customer_id: str) -> tuple[list[Span], list[Subscription], int]:
        """The timeline, its subscriptions (by start) and the revision to write against."""
        spans, subs, rev, _ = self.for_billing(customer_id)
        return spans, subs, rev

    def for_billing(self, customer_id: str) -> tuple[list[Span], list[Subscription], int, str | None]:
        """`for_customer` and the customer's sync index key as stored (for `mark_synced`)."""
        spans, rev, sync_key = self._timeline(customer_id)
        keys = [self._key(s.subscription_id) for s in spans]
        subs = [from_record(from_item(i)) for i in batch_get(self.client, self.table, keys)] if keys else []
        return spans, sorted(subs, key=lambda s: (s.active_from, s.id)), rev, sync_key

    def list_all(self) -> list[Subscription]:
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": to_value("SUB")},
        )
        return [from_record(from_item(i)) for i in items]

    def sync_due(self, until: datetime) -> list[str]:
        """Customers whose invoicing sync is due at or before `until` (the `SUBSYNC` index), most
        overdue first."""
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p AND gsi1sk <= :u",
            ExpressionAttributeValues={":p": to_value(SYNC_INDEX), ":u": to_value(_sortable(until) + "#~")},
        )
        return [from_item(i)["gsi1sk"].split("#", 1)[1] for i in items]

    def mark_synced(
        self, customer_id: str, rev: int, next_at: datetime | None, stored: str | None = None
    ) -> bool:
        """Invoicing synced the customer's billables as of the timeline's `rev`: due again at `next_at`
        (None: out of the index). False, changing nothing, when the timeline moved on since (a
        subscription write made it due now, and it stays so). No write when `stored`, the key read
        with that `rev`, is already the one (a sync that was not due, for an invoice step)."""
        key = None if next_at is None else f"{_sortable(next_at)}#{customer_id}"
        if key == stored:
            return True
        update: dict[str, Any] = (
            {
                "UpdateExpression": "REMOVE gsi1pk, gsi1sk",
                "ExpressionAttributeValues": {":rev": to_value(rev)},
            }
            if next_at is None
            else {
                "UpdateExpression": "SET gsi1pk = :p, gsi1sk = :s",
                "ExpressionAttributeValues": {
                    ":rev": to_value(rev),
                    ":p": to_value(SYNC_INDEX),
                    ":s": to_value(key),
                },
            }
        )
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._timeline_key(customer_id),
                ConditionExpression="rev = :rev",
                **update,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def addons(self, sub_id: str) -> list[SubscriptionAddon]:
        """The subscription's add-ons (`SUB#<id> / ADDON#<addon id>`: one per add-on), oldest first."""
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": to_value(f"SUB#{sub_id}"), ":s": to_value("ADDON#")},
            ConsistentRead=True,
        )
        return sorted((addon_from_record(from_item(i)) for i in items), key=lambda a: (a.created_at, a.id))

    # -- writes ----------------------------------------------------------------------------------
    def save(
        self,
        customer_id: str,
        rev: int,
        spans: list[Span],
        subs: list[Subscription],
        addons: tuple[SubscriptionAddon, ...] = (),
    ) -> int:
        """The subscriptions and the customer's timeline in one transaction, conditional on `rev`
        (TimelineChanged if another write got there first). Returns the new revision."""
        timeline = {
            **self._timeline_key(customer_id),
            **to_item(
                {
                    "spans": orjson.dumps(
                        [
                            {"id": s.subscription_id, "from": format_rfc3339(s.start), "to": _opt(s.end)}
                            for s in spans
                        ]
                    ).decode(),
                    "rev": rev + 1,
                    # Invoicing syncs the customer on its next run (see the module's docstring).
                    "gsi1pk": SYNC_INDEX,
                    "gsi1sk": f"{SYNC_NOW}#{customer_id}",
                }
            ),
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if rev == 0
            else {"ConditionExpression": "rev = :rev", "ExpressionAttributeValues": {":rev": to_value(rev)}}
        )
        items: list[dict[str, Any]] = [{"Put": {"TableName": self.table, "Item": timeline, **condition}}]
        for s in subs:
            rec = record(s)
            item = {
                **self._key(s.id),
                **to_item({**rec, "gsi1pk": "SUB", "gsi1sk": f"{rec['created_at']}#{s.id}"}),
            }
            items.append({"Put": {"TableName": self.table, "Item": item}})
        for a in addons:
            key = {"pk": {"S": f"SUB#{a.subscription_id}"}, "sk": {"S": f"ADDON#{a.addon_id}"}}
            items.append({"Put": {"TableName": self.table, "Item": {**key, **to_item(addon_record(a))}}})
        self._transact(items, TimelineChanged)
        return rev + 1
