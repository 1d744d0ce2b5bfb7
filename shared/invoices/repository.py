"""Invoices in the config table (docs/architecture.md "Invoices").

| Item | pk | sk |
|---|---|---|
| gathering head | `INVG#<customer>` | `<currency>#HEAD` (gsi1 `INVDUE` / `<due>#G#<customer>#<currency>`) |
| gathering entry | `INVG#<customer>` | `<currency>#ENTRY#<sync key>` (pending line and/or what was billed) |
| gathering pointer | `INV#<gathering id>` | `GATHERING` |
| invoice header | `INV#<id>` | `INVOICE` (gsi1 `INVDUE` / `<next due>#I#<id>` while a step is due) |
| invoice line | `INV#<id>` | `LINE#<0000>` |
| list entry | `INVCUST#<customer>` | `<created_at>#<id>` (gsi1 `INVOICE` / `<created_at>#<id>`) |
| number counter | `INVNUM#<profile>#<year>` | `INVNUM` |
| full sweep cursor | `INVSWEEP` | `INVSWEEP` (the daily full sweep: started at, last customer done) |

A gathering head is due at its first due line or its next late-usage check. One Query reads a
customer's gathering invoices (every currency) and one reads an invoice with its lines. Every write
of a gathering partition is conditional on its head's `rev`, every write of an invoice on the
header's `rev`, and what must go together (an invoice's creation and its gathering
entries; a snapshot and the billed quantities; the issue and the number counter) is one
`TransactWriteItems`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from shared.aws.dynamo import batch_get, from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.invoices import codec
from shared.invoices.models import GATHERING, Gathering, GatheringEntry, Invoice

DUE = "INVDUE"
LIST = "INVOICE"
MAX_TRANSACT = 100
SWEEP = "INVSWEEP"


@dataclass(frozen=True)
class SweepState:
    """The scheduled run's full sweep: when the current one started, the last customer id it did
    ("" before the first; None once it finished), and the item's revision."""

    started_at: datetime
    cursor: str | None
    rev: int = 0


class Stale(Exception):
    """A conditional write lost: the invoice or gathering partition moved on since it was read."""


def _g_pk(customer_id: str) -> str:
    return f"INVG#{customer_id}"


def _inv_pk(invoice_id: str) -> str:
    return f"INV#{invoice_id}"


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def _opt(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)


def _sortable(value: datetime) -> str:
    """Fixed width (microseconds always), so index keys sort and compare in time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


# -- records --------------------------------------------------------------------------------------
def _entry_doc(e: GatheringEntry) -> dict[str, Any]:
    return {
        "key": e.key,
        "line": None if e.line is None else codec.line(e.line),
        "billable": None if e.billable is None else codec.billable(e.billable),
        "awaiting": e.awaiting,
        "billed": None if e.billed is None else str(e.billed),
        "billed_through": _opt(e.billed_through),
        "service_end": _opt(e.service_end),
        "feature_key": e.feature_key,
        "invoices": e.invoices,
        "late_checkable": e.late_checkable,
    }


def _to_entry(doc: dict[str, Any]) -> GatheringEntry:
    return GatheringEntry(
        key=doc["key"],
        line=None if doc.get("line") is None else codec.to_line(doc["line"]),
        billable=None if doc.get("billable") is None else codec.to_billable(doc["billable"]),
        awaiting=doc.get("awaiting"),
        billed=None if doc.get("billed") is None else Decimal(doc["billed"]),
        billed_through=None if doc.get("billed_through") is None else parse_rfc3339(doc["billed_through"]),
        service_end=None if doc.get("service_end") is None else parse_rfc3339(doc["service_end"]),
        feature_key=doc.get("feature_key"),
        invoices=list(doc.get("invoices") or []),
        late_checkable=bool(doc.get("late_checkable", False)),
    )


def entry_item(customer_id: str, currency: str, e: GatheringEntry) -> dict[str, Any]:
    return to_item(
        {"pk": _g_pk(customer_id), "sk": f"{currency}#ENTRY#{e.key}", "doc": _dumps(_entry_doc(e))}
    )


def _header_doc(inv: Invoice) -> dict[str, Any]:
    return {
        "id": inv.id,
        "customer_id": inv.customer_id,
        "currency": inv.currency,
        "extended_status": inv.extended_status,
        "number": inv.number,
        "created_at": format_rfc3339(inv.created_at),
        "updated_at": format_rfc3339(inv.updated_at),
        "customer": None if inv.customer is None else codec.customer(inv.customer),
        "profile": None if inv.profile is None else codec.profile(inv.profile),
        "collection_at": _opt(inv.collection_at),
        "quantity_snapshotted_at": _opt(inv.quantity_snapshotted_at),
        "draft_until": _opt(inv.draft_until),
        "issued_at": _opt(inv.issued_at),
        "due_at": _opt(inv.due_at),
        "voided_at": _opt(inv.voided_at),
        "paid_at": _opt(inv.paid_at),
        "deleted_at": _opt(inv.deleted_at),
        "validation_issues": [codec.issue(v) for v in inv.validation_issues],
        "outbox": [codec.notice(n) for n in inv.outbox],
        "transitions": inv.transitions,
        "labels": inv.labels,
        "external_ids": None if inv.external_ids is None else codec.external_ids(inv.external_ids),
        "totals": codec.totals(inv.totals),
        "period": None if inv.period is None else codec.period(inv.period),
    }


def _to_header(doc: dict[str, Any], rev: int) -> Invoice:
    def t(name: str) -> datetime | None:
        value = doc.get(name)
        return None if value is None else parse_rfc3339(value)

    return Invoice(
        id=doc["id"],
        customer_id=doc["customer_id"],
        currency=doc["currency"],
        extended_status=doc["extended_status"],
        number=doc["number"],
        created_at=parse_rfc3339(doc["created_at"]),
        updated_at=parse_rfc3339(doc["updated_at"]),
        customer=None if doc.get("customer") is None else codec.to_customer(doc["customer"]),
        profile=None if doc.get("profile") is None else codec.to_profile(doc["profile"]),
        collection_at=t("collection_at"),
        quantity_snapshotted_at=t("quantity_snapshotted_at"),
        draft_until=t("draft_until"),
        issued_at=t("issued_at"),
        due_at=t("due_at"),
        voided_at=t("voided_at"),
        paid_at=t("paid_at"),
        deleted_at=t("deleted_at"),
        validation_issues=tuple(codec.to_issue(v) for v in doc.get("validation_issues", [])),
        outbox=tuple(codec.to_notice(n) for n in doc.get("outbox", [])),
        transitions=int(doc.get("transitions", 0)),
        rev=rev,
        labels=doc.get("labels"),
        external_ids=None if doc.get("external_ids") is None else codec.to_external_ids(doc["external_ids"]),
        summary=(
            codec.to_totals(doc["totals"]),
            None if doc.get("period") is None else codec.to_period(doc["period"]),
        )
        if "totals" in doc
        else None,
    )


def _header_item(inv: Invoice, rev: int, due: datetime | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "pk": _inv_pk(inv.id),
        "sk": "INVOICE",
        "customer_id": inv.customer_id,
        "currency": inv.currency,
        "status": inv.status.value,
        "extended_status": inv.extended_status,
        "created_at": format_rfc3339(inv.created_at),
        "issued_at": _opt(inv.issued_at),
        "rev": rev,
        "doc": _dumps(_header_doc(inv)),
    }
    if due is not None:
        rec["gsi1pk"] = DUE
        rec["gsi1sk"] = f"{_sortable(due)}#I#{inv.id}"
    return to_item(rec)


def _line_items(inv: Invoice) -> list[dict[str, Any]]:
    return [
        to_item({"pk": _inv_pk(inv.id), "sk": f"LINE#{i:04d}", "doc": _dumps(codec.line(x))})
        for i, x in enumerate(inv.lines)
    ]


def _with_rev(cond: str, expected: int) -> dict[str, Any]:
    return {"ConditionExpression": cond, "ExpressionAttributeValues": {":rev": to_value(expected)}}


class InvoiceRepository(TableRepository):
    # -- gathering --------------------------------------------------------------------------------
    def gatherings(self, customer_id: str) -> dict[str, Gathering]:
        """The customer's gathering partitions by currency (one Query)."""
        out: dict[str, Gathering] = {}
        entries: list[tuple[str, GatheringEntry]] = []
        for raw in query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _g_pk(customer_id)}},
            ConsistentRead=True,
        ):
            rec = from_item(raw)
            currency, kind = rec["sk"].split("#", 2)[:2]
            if kind == "HEAD":
                due = rec.get("gsi1sk")
                out[currency] = Gathering(
                    customer_id,
                    currency,
                    rec["id"],
                    parse_rfc3339(rec["created_at"]),
                    parse_rfc3339(rec["updated_at"]),
                    rev=int(rec["rev"]),
                    due=None if due is None else parse_rfc3339(due.split("#", 1)[0]),
                )
            else:
                entries.append((currency, _to_entry(orjson.loads(rec["doc"]))))
        for currency, entry in entries:
            if currency in out:
                out[currency].entries[entry.key] = entry
        return out

    def _head_write(self, g: Gathering, new_rev: int, due: datetime | None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "pk": _g_pk(g.customer_id),
            "sk": f"{g.currency}#HEAD",
            "id": g.id,
            "customer_id": g.customer_id,
            "currency": g.currency,
            "created_at": format_rfc3339(g.created_at),
            "updated_at": format_rfc3339(g.updated_at),
            "rev": new_rev,
        }
        if due is not None:
            rec["gsi1pk"] = DUE
            rec["gsi1sk"] = f"{_sortable(due)}#G#{g.customer_id}#{g.currency}"
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(rec)}
        if g.rev == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put.update(_with_rev("rev = :rev", g.rev))
        return {"Put": put}

    def _gathering_writes(
        self, g: Gathering, changed: list[GatheringEntry], removed: list[str]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": entry_item(g.customer_id, g.currency, e)}}
            for e in changed
        ]
        items += [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": _key(_g_pk(g.customer_id), f"{g.currency}#ENTRY#{k}"),
                }
            }
            for k in removed
        ]
        return items

    def save_gathering(
        self, g: Gathering, changed: list[GatheringEntry], removed: list[str], due: datetime | None
    ) -> Gathering:
        """Write the changed entries (and deletions) with the head, conditional on its `rev`; in
        chunks of one transaction each when there are more than a transaction holds."""
        writes = self._gathering_writes(g, changed, removed)
        pointer = None
        if g.rev == 0:
            pointer = {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(
                        {
                            "pk": _inv_pk(g.id),
                            "sk": "GATHERING",
                            "customer_id": g.customer_id,
                            "currency": g.currency,
                        }
                    ),
                }
            }
        chunk = MAX_TRANSACT - 2
        first = True
        while first or writes:
            part, writes = writes[:chunk], writes[chunk:]
            head = self._head_write(g, g.rev + 1, due)
            items = [head, *part]
            if first and pointer is not None:
                items.append(pointer)
            self._transact(items, Stale)
            g = replace(g, rev=g.rev + 1)
            first = False
        return g

    def gathering_pointer(self, invoice_id: str) -> tuple[str, str] | None:
        resp = self.client.get_item(
            TableName=self.table, Key=_key(_inv_pk(invoice_id), "GATHERING"), ConsistentRead=True
        )
        if "Item" not in resp:
            return None
        rec = from_item(resp["Item"])
        return rec["customer_id"], rec["currency"]

    # -- standard invoices ------------------------------------------------------------------------
    def create(
        self,
        inv: Invoice,
        due: datetime | None,
        g: Gathering,
        entries: list[GatheringEntry],
        g_due: datetime | None,
    ) -> Invoice:
        """The invoice, its lines and its list entry, with the gathering entries it collected, in one
        transaction (conditional on the gathering head's `rev`)."""
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _header_item(inv, 1, due),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            *({"Put": {"TableName": self.table, "Item": item}} for item in _line_items(inv)),
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(
                        {
                            "pk": f"INVCUST#{inv.customer_id}",
                            "sk": f"{_sortable(inv.created_at)}#{inv.id}",
                            "id": inv.id,
                            "customer_id": inv.customer_id,
                            "currency": inv.currency,
                            "gsi1pk": LIST,
                            "gsi1sk": f"{_sortable(inv.created_at)}#{inv.id}",
                        }
                    ),
                }
            },
            self._head_write(g, g.rev + 1, g_due),
            *self._gathering_writes(g, entries, []),
        ]
        if len(items) > MAX_TRANSACT:
            raise ValueError("an invoice collects at most what one transaction holds")
        self._transact(items, Stale)
        return replace(inv, rev=1)

    def save(
        self,
        inv: Invoice,
        due: datetime | None,
        *,
        lines: bool = False,
        gathering: tuple[Gathering, list[GatheringEntry], datetime | None] | None = None,
        counter: tuple[str, int] | None = None,
    ) -> Invoice:
        """The header (conditional on the `rev` read), with its lines when they changed, the gathering
        entries that must move with it and the number counter it took."""
        new_rev = inv.rev + 1
        put = {"TableName": self.table, "Item": _header_item(inv, new_rev, due)}
        put.update(_with_rev("rev = :rev", inv.rev))
        items: list[dict[str, Any]] = [{"Put": put}]
        if lines:
            items += [{"Put": {"TableName": self.table, "Item": item}} for item in _line_items(inv)]
        if gathering is not None:
            g, entries, g_due = gathering
            items.append(self._head_write(g, g.rev + 1, g_due))
            items += self._gathering_writes(g, entries, [])
        if counter is not None:
            counter_key, taken = counter
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item({"pk": counter_key, "sk": "INVNUM", "n": taken}),
                        **(
                            {"ConditionExpression": "attribute_not_exists(pk)"}
                            if taken == 1
                            else {
                                "ConditionExpression": "n = :n",
                                "ExpressionAttributeValues": {":n": to_value(taken - 1)},
                            }
                        ),
                    }
                }
            )
        if len(items) == 1:
            try:
                self.client.put_item(**put)
            except self.client.exceptions.ConditionalCheckFailedException as exc:
                raise Stale(str(exc)) from exc
        else:
            self._transact(items, Stale)
        return replace(inv, rev=new_rev)

    def get(self, invoice_id: str) -> Invoice | None:
        header: Invoice | None = None
        lines = []
        for raw in query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": _inv_pk(invoice_id)}},
            ConsistentRead=True,
        ):
            rec = from_item(raw)
            if rec["sk"] == "INVOICE":
                header = _to_header(orjson.loads(rec["doc"]), int(rec["rev"]))
            elif rec["sk"].startswith("LINE#"):
                lines.append((rec["sk"], codec.to_line(orjson.loads(rec["doc"]))))
        if header is None:
            return None
        return header.with_lines(tuple(x for _, x in sorted(lines, key=lambda p: p[0])))

    def counter(self, counter_key: str) -> int:
        resp = self.client.get_item(
            TableName=self.table, Key=_key(counter_key, "INVNUM"), ConsistentRead=True
        )
        return int(from_item(resp["Item"])["n"]) if "Item" in resp else 0

    def due(self, until: datetime) -> list[dict[str, Any]]:
        """Due entries (`kind` I or G, `customer_id`, `currency`, `invoice_id`), oldest first."""
        out = []
        for raw in query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk <= :until",
            ExpressionAttributeValues={":pk": {"S": DUE}, ":until": {"S": _sortable(until) + "#~"}},
        ):
            out.append(self._due_entry(from_item(raw)))
        return out

    def next_due(self, after: datetime) -> Iterator[dict[str, Any]]:
        """Due entries strictly after `after`, in time order (for a test clock's next step)."""
        for raw in query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk > :after",
            ExpressionAttributeValues={":pk": {"S": DUE}, ":after": {"S": _sortable(after) + "#~"}},
        ):
            yield self._due_entry(from_item(raw))

    @staticmethod
    def _due_entry(rec: dict[str, Any]) -> dict[str, Any]:
        at, kind, *rest = rec["gsi1sk"].split("#")
        return {
            "at": parse_rfc3339(at),
            "kind": kind,
            "customer_id": rec["customer_id"],
            "currency": rec["currency"],
            "invoice_id": rest[0] if kind == "I" else None,
        }

    def sweep_state(self) -> SweepState | None:
        resp = self.client.get_item(TableName=self.table, Key=_key(SWEEP, SWEEP), ConsistentRead=True)
        if "Item" not in resp:
            return None
        rec = from_item(resp["Item"])
        return SweepState(parse_rfc3339(rec["started_at"]), rec.get("cursor"), int(rec["rev"]))

    def save_sweep(self, state: SweepState) -> SweepState:
        """Conditional on the revision read (Stale: another run moved it)."""
        item: dict[str, Any] = {
            "pk": SWEEP,
            "sk": SWEEP,
            "started_at": format_rfc3339(state.started_at),
            "rev": state.rev + 1,
        }
        if state.cursor is not None:
            item["cursor"] = state.cursor
        cond = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if state.rev == 0
            else _with_rev("rev = :rev", state.rev)
        )
        try:
            self.client.put_item(TableName=self.table, Item=to_item(item), **cond)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise Stale(str(exc)) from exc
        return replace(state, rev=state.rev + 1)

    def list_entries(self) -> list[dict[str, Any]]:
        return [
            from_item(raw)
            for raw in query_all(
                self.client,
                TableName=self.table,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :pk",
                ExpressionAttributeValues={":pk": {"S": LIST}},
            )
        ]

    def customer_entries(self, customer_id: str) -> list[dict[str, Any]]:
        return [
            from_item(raw)
            for raw in query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"INVCUST#{customer_id}"}},
            )
        ]

    def headers(self, invoice_ids: list[str]) -> list[Invoice]:
        keys = [_key(_inv_pk(i), "INVOICE") for i in invoice_ids]
        out = []
        for raw in batch_get(self.client, self.table, keys):
            rec = from_item(raw)
            out.append(_to_header(orjson.loads(rec["doc"]), int(rec["rev"])))
        return out


GATHERING_STATUS = GATHERING
