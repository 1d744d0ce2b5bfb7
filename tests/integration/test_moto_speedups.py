"""The local fixes for moto: TransactWriteItems keeps its all-or-nothing semantics, and concurrent
conditional writes let exactly one through, as DynamoDB does."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from tests.support.harness import Stack


def _put(key: str, value: str, condition: str | None = None) -> dict:
    put: dict = {
        "TableName": "meterline-config",
        "Item": {"pk": {"S": key}, "sk": {"S": "X"}, "v": {"S": value}},
    }
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def _get(stack: Stack, key: str) -> str | None:
    item = (
        stack.clients["dynamodb"]
        .get_item(TableName="meterline-config", Key={"pk": {"S": key}, "sk": {"S": "X"}})
        .get("Item")
    )
    return item["v"]["S"] if item else None


def test_a_cancelled_transaction_leaves_every_item_as_it_was(stack: Stack) -> None:
    ddb = stack.clients["dynamodb"]
    ddb.transact_write_items(TransactItems=[_put("a", "1"), _put("b", "1")])
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(
            TransactItems=[
                _put("a", "2"),  # would overwrite
                _put("c", "2"),  # would create
                _put("b", "2", "attribute_not_exists(pk)"),  # fails: b exists
            ]
        )
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in err.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert (_get(stack, "a"), _get(stack, "b"), _get(stack, "c")) == ("1", "1", None)


def test_a_committed_transaction_writes_every_item(stack: Stack) -> None:
    ddb = stack.clients["dynamodb"]
    ddb.transact_write_items(TransactItems=[_put("a", "1"), _put("b", "1", "attribute_not_exists(pk)")])
    assert (_get(stack, "a"), _get(stack, "b")) == ("1", "1")


def test_index_queries_return_every_match_in_index_order(stack: Stack) -> None:
    ddb = stack.clients["dynamodb"]
    for i, sk in enumerate(["c", "a", "b"]):
        ddb.put_item(
            TableName="meterline-config",
            Item={"pk": {"S": f"k{i}"}, "sk": {"S": "X"}, "gsi1pk": {"S": "IDX"}, "gsi1sk": {"S": sk}},
        )
    ddb.put_item(TableName="meterline-config", Item={"pk": {"S": "other"}, "sk": {"S": "X"}})
    resp = ddb.query(
        TableName="meterline-config",
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": "IDX"}},
    )
    assert [i["gsi1sk"]["S"] for i in resp["Items"]] == ["a", "b", "c"]
    back = ddb.query(
        TableName="meterline-config",
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :p AND gsi1sk > :s",
        ExpressionAttributeValues={":p": {"S": "IDX"}, ":s": {"S": "a"}},
        ScanIndexForward=False,
    )
    assert [i["gsi1sk"]["S"] for i in back["Items"]] == ["c", "b"]


@pytest.mark.parametrize("write", ["transaction", "put"])
def test_concurrent_conditional_writes_let_exactly_one_through(stack: Stack, write: str) -> None:
    """Two threads create the same item under `attribute_not_exists(pk)`, 200 times over. moto
    checks and applies without a lock, so some rounds let both through (2 of 200 were seen with a
    tiny switch interval before the lock); DynamoDB lets exactly one."""
    ddb = stack.clients["dynamodb"]
    cond = "attribute_not_exists(pk)"

    def create(key: str, value: str) -> None:
        if write == "transaction":
            ddb.transact_write_items(TransactItems=[_put(key, value, cond)])
        else:
            ddb.put_item(**_put(key, value, cond)["Put"])

    def race(key: str, do: Callable[[str, str], None]) -> int:
        won: list[str] = []
        barrier = threading.Barrier(2)

        def go(value: str) -> None:
            barrier.wait()
            try:
                do(key, value)
                won.append(value)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] in (
                    "TransactionCanceledException",
                    "ConditionalCheckFailedException",
                ), exc

        threads = [threading.Thread(target=go, args=(v,)) for v in ("1", "2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(won)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within 200 rounds
    try:
        winners = [race(f"race-{write}-{n}", create) for n in range(200)]
    finally:
        sys.setswitchinterval(interval)
    assert set(winners) == {1}, {k: winners.count(k) for k in set(winners)}
