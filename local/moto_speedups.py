"""Speed and safety fixes for moto, applied wherever moto stands in for AWS.

moto 5 answers a base-table Query by sorting every item of the table and then filtering on the
partition key, so each Query costs O(table size) and a busy local stack slows to seconds per
query. Items are already stored per partition (`Table.items[hash][range]`), so for a base-table
Query with a partition key we hand moto only that partition. A GSI Query walks every item either
way, but moto first sorts the whole table by its primary key and then sorts the matches by the
index keys again; here it gets the items unsorted (the second sort alone fixes the order). Same
results, same order; scans are untouched.

TransactWriteItems: moto deep-copies every table a transaction touches, once per action, to roll
back on failure (O(table size) per action). Here the transaction instead saves only the items its
actions name and puts exactly those back when moto cancels it; moto's own logic (conditions,
cancellation reasons, single-item checks) runs unchanged.

DynamoDB writes (a correctness fix, not speed): moto checks a write's condition and then applies it
without a lock, so two concurrent conditional writes (or transactions) on the threaded server can
both pass `attribute_not_exists(pk)` and both succeed, where DynamoDB lets exactly one through
(two concurrent subscription creates for one customer both got a 201). Every mutating DynamoDB call
takes one re-entrant lock here: each request is atomic, as in DynamoDB.

Kinesis (a correctness fix, not speed): moto's `Shard.put_record` numbers a record max+1 without a
lock, so concurrent PutRecords on the threaded server hand out one sequence number twice and the
later record replaces the earlier one: accepted events vanish. Appends and reads take one lock
here (reads then index the wanted range instead of walking the shard). The lock is module-level,
not per shard, so the shards still pickle (local/persistence.py snapshots moto's state).
"""

from __future__ import annotations

import copy
import threading
import types
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.kinesis.models import Shard

_local = threading.local()
_kinesis_lock = threading.Lock()
_dynamodb_write_lock = threading.RLock()  # re-entrant: a transaction's rollback puts items back
_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    original_all_items = Table.all_items
    original_query = Table.query

    def all_items(self: Table) -> list[Any]:
        hash_key = getattr(_local, "hash_key", None)
        if hash_key is not None and self.range_key_attr:
            partition = self.items.get(hash_key) if hash_key in self.items else None
            return sorted(list(partition.values()), key=lambda item: item.range_key) if partition else []
        if getattr(_local, "unsorted", False):
            # An index query filters these and then sorts the matches by the index keys itself.
            # list() copies a dict in one step under the GIL: the local server's other threads may
            # be writing to the table meanwhile.
            if not self.range_key_attr:
                return list(self.items.values())
            return [item for partition in list(self.items.values()) for item in list(partition.values())]
        return original_all_items(self)

    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = (
            kwargs.get("index_name") if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
        )
        if index_name is not None:
            _local.unsorted = True
            try:
                return original_query(self, hash_key, *args, **kwargs)
            finally:
                _local.unsorted = False
        if hash_key is None or not self.range_key_attr:
            return original_query(self, hash_key, *args, **kwargs)
        _local.hash_key = hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _local.hash_key = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]
    _patch_transactions()
    _patch_dynamodb_writes()
    _patch_kinesis_shard()
    _applied = True


def _deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    if getattr(_local, "in_transaction", False) and isinstance(value, Table):
        return value  # the transaction keeps its own item-level backup
    return copy.deepcopy(value, memo)


def _patch_transactions() -> None:
    original = DynamoDBBackend.transact_write_items
    # moto's module uses `copy.deepcopy` for the table backup (and one item copy elsewhere).
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy, copy=copy.copy)  # type: ignore[attr-defined]

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[str, dict[str, Any], Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            name = op.get("TableName")
            table = self.tables.get(name) if isinstance(op, dict) and name else None
            if table is None:
                continue
            key = op.get("Key")
            if key is None and "Item" in op:
                attrs = [a for a in (table.hash_key_attr, table.range_key_attr) if a]
                key = {a: op["Item"][a] for a in attrs if a in op["Item"]}
            try:
                current = self.get_item(name, key)
            except Exception:  # a malformed key: moto rejects the transaction before writing
                continue
            saved.append((name, key, copy.deepcopy(current)))
        _local.in_transaction = True
        try:
            return original(self, transact_items)
        except Exception:
            for name, key, item in reversed(saved):
                if item is None:
                    table = self.get_table(name)
                    hash_value, range_value = self.get_keys_value(table, key)
                    if table.get_item(hash_value, range_value) is not None:
                        table.delete_item(hash_value, range_value)
                else:
                    self.put_item(name, item.to_json()["Attributes"])
            raise
        finally:
            _local.in_transaction = False

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def _patch_dynamodb_writes() -> None:
    """One request at a time through moto's mutating calls (after `_patch_transactions`, so a
    transaction's saved items, its run and its rollback happen under one hold of the lock)."""

    def locked(original: Any) -> Any:
        def call(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
            with _dynamodb_write_lock:
                return original(self, *args, **kwargs)

        return call

    for name in _WRITES:
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))


def _patch_kinesis_shard() -> None:
    original_put, original_get = Shard.put_record, Shard.get_records

    def put_record(self: Shard, *args: Any, **kwargs: Any) -> str:
        with _kinesis_lock:
            return original_put(self, *args, **kwargs)

    def get_records(self: Shard, last_sequence_id: str, limit: int | None) -> Any:
        # moto walks the shard from its first record on every call: O(stream) per poll, and the
        # local stream keeps every record it ever took (state is kept across restarts). Appends
        # number records 1, 2, 3... (under the lock above), so read the wanted range directly.
        with _kinesis_lock:
            records = self.records
            if not records:
                return original_get(self, last_sequence_id, limit)
            first, newest = next(iter(records)), next(reversed(records))
            if newest - first + 1 != len(records):  # not contiguous: moto's own walk
                return original_get(self, last_sequence_id, limit)
            start = max(int(last_sequence_id) + 1, first)
            stop = newest if limit is None else min(newest, start + limit - 1)
            results = [records[n] for n in range(start, stop + 1)]
            if not results:
                return [], int(last_sequence_id), 0
            behind = records[newest].created_at - results[-1].created_at
            return results, results[-1].sequence_number, int(behind * 1000)

    Shard.put_record = put_record  # type: ignore[method-assign]
    Shard.get_records = get_records  # type: ignore[method-assign]
