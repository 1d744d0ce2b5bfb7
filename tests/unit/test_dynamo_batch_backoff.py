"""batch_get / batch_put resend unprocessed items with growing, jittered delays, and give up
after a bounded number of rounds instead of spinning against a throttled partition."""

from __future__ import annotations

from typing import Any

import pytest

from shared.aws import dynamo


class StubClient:
    """Answers each call with the next scripted response; records every request."""

    def __init__(self, responses: list[dict[str, Any]]) -> None:
        self.responses = responses
        self.requests: list[dict[str, Any]] = []

    def _next(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(RequestItems)
        return self.responses.pop(0) if self.responses else {}

    batch_get_item = _next
    batch_write_item = _next


def key(n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{n}"}}


def test_batch_get_resends_unprocessed_keys_after_growing_delays() -> None:
    unprocessed = {"t": {"Keys": [key(2)], "ConsistentRead": True}}
    client = StubClient(
        [
            {"Responses": {"t": [key(1)]}, "UnprocessedKeys": unprocessed},
            {"Responses": {"t": []}, "UnprocessedKeys": unprocessed},
            {"Responses": {"t": [key(2)]}},
        ]
    )
    sleeps: list[float] = []
    got = dynamo.batch_get(client, "t", [key(1), key(2)], sleep=sleeps.append)
    assert got == [key(1), key(2)]
    assert client.requests[1:] == [unprocessed, unprocessed]  # only the unprocessed key is resent
    assert len(sleeps) == 2
    assert all(0 <= s < dynamo.BACKOFF_CAP_S for s in sleeps)


def test_batch_put_resends_only_unprocessed_items() -> None:
    left = {"t": [{"PutRequest": {"Item": key(3)}}]}
    client = StubClient([{"UnprocessedItems": left}, {"UnprocessedItems": {}}])
    sleeps: list[float] = []
    dynamo.batch_put(client, "t", [key(n) for n in range(30)], sleep=sleeps.append)
    # 30 items: chunks of 25 and 5; the first chunk needed one resend of its leftover.
    assert [len(r["t"]) for r in client.requests] == [25, 1, 5]
    assert client.requests[1] == left
    assert len(sleeps) == 1


def test_gives_up_after_bounded_rounds() -> None:
    stuck = {"t": [{"PutRequest": {"Item": key(1)}}]}
    client = StubClient([{"UnprocessedItems": stuck}] * 100)
    sleeps: list[float] = []
    with pytest.raises(dynamo.UnprocessedItemsError):
        dynamo.batch_put(client, "t", [key(1)], sleep=sleeps.append)
    assert len(client.requests) == dynamo.MAX_UNPROCESSED_ROUNDS
    assert len(sleeps) == dynamo.MAX_UNPROCESSED_ROUNDS - 1


def test_backoff_is_exponential_capped_full_jitter() -> None:
    assert dynamo.backoff_delay(0, rand=lambda: 0.0) == 0.0
    top = [dynamo.backoff_delay(n, rand=lambda: 0.999999) for n in range(10)]
    assert top == sorted(top)  # grows with the round
    assert top[0] < 0.06 and max(top) <= dynamo.BACKOFF_CAP_S
