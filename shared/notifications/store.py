"""Notification events, deliveries, dedupe claims, threshold state and dead letters (notifications table).

| Item | pk | sk | indexes |
|---|---|---|---|
| Event | `NEVENT#<id>` | `EVENT` | by_created: `NEVENT` / `<created_at>#<id>` |
| Delivery (per channel) | `NEVENT#<id>` | `DELIVERY#<channel>` | due: `DUE` / `<next at>#<id>#<channel>` |
| Dedupe claim | `CLAIM#<domain event id>` | `RULE#<rule id>` | |
| Threshold state | `TSTATE#<rule>#<entitlement>#<feature>` | `<usage period from>#<kind>` | |
| Dead letter | `DEADLETTER` | `<failed_at>#<id>#<channel>` | |

An event and its deliveries share a partition: one Query reads the whole event. `due` is sparse:
SUCCESS/FAILED deliveries drop its keys, so the retry sweep reads only work. A SENDING delivery
keeps a `due_sk` at its lease end, so a sender that died mid-attempt is retried.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from botocore.exceptions import ClientError

from shared.aws.dynamo import from_item, query_all, to_item
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.notifications.models import (
    Attempt,
    Delivery,
    Emission,
    NotificationEvent,
    State,
    ThresholdState,
)

RETENTION = timedelta(days=90)
CLAIM_RETENTION = timedelta(days=7)  # far beyond SNS/Lambda async redelivery (6 h max event age)
DUE = "DUE"


class Duplicate(Exception):
    """The domain event was already turned into notifications for this rule (SNS redelivery)."""


class StateRace(Exception):
    """Threshold state changed between read and write: re-evaluate."""


def _iso(value: datetime) -> str:
    # Fixed width (always milliseconds, UTC) so index sort keys order like times.
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _attempt_record(a: Attempt) -> dict[str, Any]:
    return {
        "state": a.state,
        "timestamp": format_rfc3339(a.timestamp),
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "body": a.body,
        "url": a.url,
    }


def _attempt_from(rec: dict[str, Any]) -> Attempt:
    code = rec.get("status_code")
    return Attempt(
        state=rec["state"],
        timestamp=parse_rfc3339(rec["timestamp"]),
        status_code=int(code) if code is not None else None,
        duration_ms=int(rec.get("duration_ms") or 0),
        body=rec.get("body") or "",
        url=rec.get("url"),
    )


def _event_record(e: NotificationEvent) -> dict[str, Any]:
    return {
        "pk": f"NEVENT#{e.id}",
        "sk": "EVENT",
        "gsi1pk": "NEVENT",
        "gsi1sk": f"{_iso(e.created_at)}#{e.id}",
        "id": e.id,
        "type": e.type,
        "created_at": format_rfc3339(e.created_at),
        "rule": e.rule,
        # The payload as the exact bytes we sign and send: an immutable historical snapshot.
        "payload": e.payload_bytes().decode(),
        "annotations": orjson.dumps(e.annotations).decode(),
        "channel_ids": e.channel_ids,
        "feature_id": e.feature_id,
        "feature_key": e.feature_key,
        "customer_id": e.customer_id,
        "expires_at": _epoch(e.created_at + RETENTION),
    }


def _event_from(rec: dict[str, Any]) -> NotificationEvent:
    return NotificationEvent(
        id=rec["id"],
        type=rec["type"],
        created_at=parse_rfc3339(rec["created_at"]),
        rule=dict(rec["rule"]),
        payload=orjson.loads(rec["payload"]),
        channel_ids=list(rec.get("channel_ids") or []),
        annotations=orjson.loads(rec.get("annotations") or "{}"),
        feature_id=rec.get("feature_id"),
        feature_key=rec.get("feature_key"),
        customer_id=rec.get("customer_id"),
    )


def _delivery_record(d: Delivery, created_at: datetime) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "pk": f"NEVENT#{d.event_id}",
        "sk": f"DELIVERY#{d.channel_id}",
        "event_id": d.event_id,
        "channel_id": d.channel_id,
        "channel": d.channel,
        "state": d.state,
        "updated_at": format_rfc3339(d.updated_at),
        "window_start": format_rfc3339(d.window_start),
        "attempt_count": d.attempt_count,
        "attempts": [],
        "expires_at": _epoch(created_at + RETENTION),
    }
    if d.next_attempt is not None:
        rec.update(
            next_attempt=format_rfc3339(d.next_attempt),
            due_pk=DUE,
            due_sk=f"{_iso(d.next_attempt)}#{d.event_id}#{d.channel_id}",
        )
    return rec


def _delivery_from(rec: dict[str, Any]) -> Delivery:
    return Delivery(
        event_id=rec["event_id"],
        channel_id=rec["channel_id"],
        channel=dict(rec["channel"]),
        state=rec["state"],
        updated_at=parse_rfc3339(rec["updated_at"]),
        window_start=parse_rfc3339(rec["window_start"]),
        attempt_count=int(rec.get("attempt_count") or 0),
        next_attempt=parse_rfc3339(rec["next_attempt"]) if rec.get("next_attempt") else None,
        reason=rec.get("reason"),
        attempts=[_attempt_from(a) for a in rec.get("attempts") or []],
    )


class NotificationStore(TableRepository):
    # -- threshold state -------------------------------------------------------------------------
    def threshold_state(self, pk: str, sk: str) -> ThresholdState:
        item = self.client.get_item(
            TableName=self.table, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        rec = from_item(item.get("Item") or {})
        as_of = parse_rfc3339(rec["as_of"]) if rec.get("as_of") else None
        return ThresholdState(pk, sk, rec.get("threshold"), as_of)

    # -- create ----------------------------------------------------------------------------------
    def create(self, domain_event_id: str | None, rule_id: str, emissions: list[Emission]) -> None:
        """All events of one (domain event, rule), their deliveries, state moves and the dedupe claim,
        in one transaction: a redelivered domain event finds the claim and creates nothing.
        """
        items: list[dict[str, Any]] = []
        first = emissions[0].event.created_at
        if domain_event_id is not None:
            claim = {
                "pk": f"CLAIM#{domain_event_id}",
                "sk": f"RULE#{rule_id}",
                "event_ids": [e.event.id for e in emissions],
                "expires_at": _epoch(first + CLAIM_RETENTION),
            }
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(claim),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        for em in emissions:
            if em.state is not None:
                items.append(self._state_put(em))
            items.append({"Put": {"TableName": self.table, "Item": to_item(_event_record(em.event))}})
            for d in em.event.deliveries:
                items.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": to_item(_delivery_record(d, em.event.created_at)),
                        }
                    }
                )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if domain_event_id is not None and reasons and reasons[0] == "ConditionalCheckFailed":
                raise Duplicate(domain_event_id) from None
            raise StateRace(rule_id) from None

    def _state_put(self, em: Emission) -> dict[str, Any]:
        st = em.state
        assert st is not None and em.as_of is not None
        item = {
            "pk": st.pk,
            "sk": st.sk,
            "threshold": em.new_threshold,
            "event_id": em.event.id,
            "as_of": format_rfc3339(em.as_of),
            "expires_at": _epoch(em.as_of + timedelta(days=400)),
        }
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(item)}
        if st.as_of is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:  # unchanged since we read it
            put["ConditionExpression"] = "as_of = :a"
            put["ExpressionAttributeValues"] = to_item({":a": format_rfc3339(st.as_of)})
        return {"Put": put}

    # -- reads -----------------------------------------------------------------------------------
    def get(self, event_id: str) -> NotificationEvent | None:
        items = [
            from_item(i)
            for i in query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": f"NEVENT#{event_id}"}},
                ConsistentRead=True,
            )
        ]
        head = [i for i in items if i["sk"] == "EVENT"]
        if not head:
            return None
        event = _event_from(head[0])
        by_channel = {i["channel_id"]: _delivery_from(i) for i in items if i["sk"].startswith("DELIVERY#")}
        event.deliveries = [by_channel[c] for c in event.channel_ids if c in by_channel]
        return event

    def list_heads(self, start: datetime | None, end: datetime | None) -> list[NotificationEvent]:
        """Events created in [start, end], newest first (deliveries not loaded)."""
        low = _iso(start) if start else "0"
        high = (_iso(end) if end else "9") + "#~"
        return [
            _event_from(from_item(i))
            for i in query_all(
                self.client,
                TableName=self.table,
                IndexName="by_created",
                KeyConditionExpression="gsi1pk = :p AND gsi1sk BETWEEN :l AND :h",
                ExpressionAttributeValues=to_item({":p": "NEVENT", ":l": low, ":h": high}),
                ScanIndexForward=False,
            )
        ]

    def due(self, now: datetime, limit: int = 200) -> list[tuple[str, str]]:
        """(event id, channel id) of deliveries whose next attempt (or SENDING lease) is due."""
        out: list[tuple[str, str]] = []
        for item in query_all(
            self.client,
            TableName=self.table,
            IndexName="due",
            KeyConditionExpression="due_pk = :p AND due_sk <= :n",
            ExpressionAttributeValues=to_item({":p": DUE, ":n": _iso(now) + "#~"}),
        ):
            rec = from_item(item)
            out.append((rec["event_id"], rec["channel_id"]))
            if len(out) >= limit:
                break
        return out

    def delivery(self, event_id: str, channel_id: str) -> Delivery | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"NEVENT#{event_id}", "sk": f"DELIVERY#{channel_id}"}),
            ConsistentRead=True,
        )
        return _delivery_from(from_item(item["Item"])) if "Item" in item else None

    def dead_letters(self) -> list[dict[str, Any]]:
        return [
            from_item(i)
            for i in query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "DEADLETTER"}},
            )
        ]

    # -- delivery state machine ------------------------------------------------------------------
    def _key(self, event_id: str, channel_id: str) -> dict[str, Any]:
        return to_item({"pk": f"NEVENT#{event_id}", "sk": f"DELIVERY#{channel_id}"})

    def claim(self, d: Delivery, now: datetime, lease: timedelta) -> bool:
        """PENDING (or SENDING past its lease) -> SENDING, attempt_count + 1; False if someone else has it."""
        until = now + lease
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(d.event_id, d.channel_id),
                UpdateExpression="SET #s = :sending, attempt_count = :next, updated_at = :now, "
                "lease_until = :until, due_sk = :due",
                ConditionExpression="attempt_count = :n AND "
                "(#s = :pending OR (#s = :sending AND lease_until <= :now))",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=to_item(
                    {
                        ":sending": State.SENDING,
                        ":pending": State.PENDING,
                        ":n": d.attempt_count,
                        ":next": d.attempt_count + 1,
                        ":now": format_rfc3339(now),
                        ":until": format_rfc3339(until),
                        ":due": f"{_iso(until)}#{d.event_id}#{d.channel_id}",
                    }
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        d.state, d.attempt_count, d.updated_at = State.SENDING, d.attempt_count + 1, now
        return True

    def finish(
        self,
        d: Delivery,
        attempt: Attempt,
        state: str,
        next_at: datetime | None,
        reason: str | None,
        dead_letter: dict[str, Any] | None = None,
    ) -> bool:
        """Record an attempt and move SENDING -> SUCCESS | PENDING (retry at next_at) | FAILED."""
        values: dict[str, Any] = {
            ":state": state,
            ":now": format_rfc3339(attempt.timestamp),
            ":attempt": [_attempt_record(attempt)],
            ":n": d.attempt_count,
            ":sending": State.SENDING,
        }
        sets = ["#s = :state", "updated_at = :now", "attempts = list_append(attempts, :attempt)"]
        removes = ["lease_until"]
        if reason:
            sets.append("reason = :reason")
            values[":reason"] = reason
        else:
            removes.append("reason")
        if next_at is not None:
            sets += ["next_attempt = :next", "due_pk = :duepk", "due_sk = :due"]
            values.update(
                {
                    ":next": format_rfc3339(next_at),
                    ":duepk": DUE,
                    ":due": f"{_iso(next_at)}#{d.event_id}#{d.channel_id}",
                }
            )
        else:
            removes += ["next_attempt", "due_pk", "due_sk"]
        update = {
            "TableName": self.table,
            "Key": self._key(d.event_id, d.channel_id),
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
            "ConditionExpression": "attempt_count = :n AND #s = :sending",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": to_item(values),
        }
        try:
            if dead_letter is None:
                self.client.update_item(**update)
            else:
                item = {
                    "pk": "DEADLETTER",
                    "sk": f"{_iso(attempt.timestamp)}#{d.event_id}#{d.channel_id}",
                    **dead_letter,
                }
                self.client.transact_write_items(
                    TransactItems=[
                        {"Update": update},
                        {"Put": {"TableName": self.table, "Item": to_item(item)}},
                    ]
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in (
                "ConditionalCheckFailedException",
                "TransactionCanceledException",
            ):
                return False  # our lease expired and another sender took over: its result wins
            raise
        d.state, d.reason, d.next_attempt = state, reason, next_at
        d.attempts.append(attempt)
        return True

    def requeue(self, event_id: str, channel_id: str, now: datetime, reason: str) -> bool:
        """Resend: a finished (or waiting) delivery becomes PENDING now, with a fresh retry window."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(event_id, channel_id),
                UpdateExpression="SET #s = :pending, reason = :r, updated_at = :now, window_start = :now, "
                "next_attempt = :now, due_pk = :duepk, due_sk = :due",
                ConditionExpression="attribute_exists(pk) AND #s <> :sending",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=to_item(
                    {
                        ":pending": State.PENDING,
                        ":sending": State.SENDING,
                        ":r": reason,
                        ":now": format_rfc3339(now),
                        ":duepk": DUE,
                        ":due": f"{_iso(now)}#{event_id}#{channel_id}",
                    }
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # in flight right now: that attempt is the resend
            raise
        return True
