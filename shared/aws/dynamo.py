"""DynamoDB item (de)serialisation and small helpers shared by repositories.

We use the low-level client (not the resource API) for speed; numbers round-trip as Decimal.
The encoding is boto3's (`boto3.dynamodb.types`), without importing boto3: that module can't be
loaded without boto3's package, which loads s3transfer (cold starts). Reading uses Powertools'
copy of boto3's TypeDeserializer (binary comes back as `bytes`, not boto3's `Binary`); writing is
`serialize` below, boto3's TypeSerializer rules; tests/unit/test_dynamo_types.py checks both
against boto3's on generated values.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Set
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.shared.dynamodb_deserializer import DYNAMODB_CONTEXT, TypeDeserializer

_de = TypeDeserializer()

# Unprocessed items come back when a partition is throttled; botocore's retries don't cover them
# (the call itself succeeded). Re-asking at once just gets throttled again, so back off with full
# jitter (spreads concurrent writers), and give up after a bounded number of rounds: the caller
# fails and its own retry (Lambda's, the client's) takes over, every write here being idempotent.
MAX_UNPROCESSED_ROUNDS = 8
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0

Sleep = Callable[[float], None]


class UnprocessedItemsError(RuntimeError):
    """DynamoDB still reported unprocessed items after MAX_UNPROCESSED_ROUNDS rounds."""


def backoff_delay(round_no: int, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^round))."""
    scale: float = 2**round_no  # int ** int is typed Any (a negative power is a float)
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * scale) * rand()


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))  # traps inexact, rounded, overflow
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, int | Decimal)  # bool too, as in boto3 (a bool alone is BOOL: checked first)


def serialize(value: Any) -> dict[str, Any]:
    """A Python value as a DynamoDB AttributeValue, by boto3's TypeSerializer rules."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": value}
    if isinstance(value, Set):
        if all(_is_number(v) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, str) for v in value):
            return {"SS": list(value)}
        if all(isinstance(v, bytes | bytearray) for v in value):
            return {"BS": list(value)}
    if isinstance(value, Mapping):
        return {"M": {k: serialize(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: serialize(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def to_value(value: Any) -> dict[str, Any]:
    return serialize(value)


def query_all(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Yield every item of a Query, following LastEvaluatedKey."""
    while True:
        page = client.query(**kwargs)
        yield from page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last


def _drain(
    call: Callable[[dict[str, Any]], dict[str, Any] | None], request: dict[str, Any], sleep: Sleep
) -> None:
    """Send `request`, then resend whatever `call` returns as unprocessed, with backoff."""
    for round_no in range(MAX_UNPROCESSED_ROUNDS):
        if round_no:
            sleep(backoff_delay(round_no - 1))
        request = call(request) or {}
        if not request:
            return
    raise UnprocessedItemsError(f"unprocessed items left after {MAX_UNPROCESSED_ROUNDS} rounds")


def batch_get(
    client: Any,
    table: str,
    keys: list[dict[str, Any]],
    consistent: bool = True,
    sleep: Sleep = time.sleep,
    projection: str | None = None,
) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100, retrying unprocessed keys with backoff. `projection` (plain
    attribute names, comma-separated) reads only those attributes: existence checks."""
    out: list[dict[str, Any]] = []

    def call(request: dict[str, Any]) -> dict[str, Any] | None:
        resp = client.batch_get_item(RequestItems=request)
        out.extend(resp.get("Responses", {}).get(table, []))
        unprocessed: dict[str, Any] | None = resp.get("UnprocessedKeys")
        return unprocessed

    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {"Keys": keys[start : start + 100], "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        _drain(call, {table: request}, sleep)
    return out


def batch_put(client: Any, table: str, items: list[dict[str, Any]], sleep: Sleep = time.sleep) -> None:
    """BatchWriteItem puts in chunks of 25 (the AWS cap moto does not enforce), retrying unprocessed
    items with backoff."""

    def call(request: dict[str, Any]) -> dict[str, Any] | None:
        unprocessed: dict[str, Any] | None = client.batch_write_item(RequestItems=request).get(
            "UnprocessedItems"
        )
        return unprocessed

    for start in range(0, len(items), 25):
        _drain(call, {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}, sleep)
