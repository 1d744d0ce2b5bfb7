"""A speed fix for moto's DynamoDB Query, applied wherever moto stands in for AWS.

moto 5 answers a base-table Query by sorting every item of the table and then filtering on the
partition key, so each Query costs O(table size) and a busy local stack slows to seconds per
query. Items are already stored per partition (`Table.items[hash][range]`), so for a base-table
Query with a partition key we hand moto only that partition. Same results, same order; GSI
queries and scans are untouched.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.models.table import Table

_local = threading.local()
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
            return sorted(partition.values(), key=lambda item: item.range_key) if partition else []
        return original_all_items(self)

    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = (
            kwargs.get("index_name") if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
        )
        if index_name is not None or hash_key is None or not self.range_key_attr:
            return original_query(self, hash_key, *args, **kwargs)
        _local.hash_key = hash_key
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _local.hash_key = None

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]
    _applied = True
