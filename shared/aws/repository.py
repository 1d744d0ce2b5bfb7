"""The base of every DynamoDB repository: one table, a client resolved lazily (tests and the local
runtime swap endpoints under it), and transactions whose cancellation becomes a domain error."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from shared.aws import clients


class TableRepository:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    def _transact(self, items: list[dict[str, Any]], error: type[Exception]) -> None:
        """TransactWriteItems; `error` when DynamoDB cancels it (a condition failed)."""
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise error(str(exc)) from exc
            raise
