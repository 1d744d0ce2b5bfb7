"""DynamoDB item (de)serialisation and small helpers shared by repositories.

We use the low-level client (not the resource API) for speed; numbers round-trip as Decimal.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_ser = TypeSerializer()
_de = TypeDeserializer()


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def to_value(value: Any) -> dict[str, Any]:
    return _ser.serialize(value)


def query_all(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Yield every item of a Query, following LastEvaluatedKey."""
    while True:
        page = client.query(**kwargs)
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def batch_get(
    client: Any, table: str, keys: list[dict[str, Any]], consistent: bool = True
) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100, retrying unprocessed keys."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": keys[start : start + 100], "ConsistentRead": consistent}}
        while request:
            resp = client.batch_get_item(RequestItems=request)
            out.extend(resp.get("Responses", {}).get(table, []))
            request = resp.get("UnprocessedKeys") or {}
    return out


def batch_put(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    """BatchWriteItem puts in chunks of 25 (the AWS cap moto does not enforce), retrying unprocessed."""
    for start in range(0, len(items), 25):
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            resp = client.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
