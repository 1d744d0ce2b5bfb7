"""Catalog domain errors: plain exceptions, no HTTP. The API maps them to problem+json
(functions/api/routes/catalog.py `to_api_error`)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Literal

Source = Literal["body", "path", "query"]


@dataclass(frozen=True)
class FieldIssue:
    """One bad field: its path (`phases[0].rate_cards[1].feature.id`), where it came from, and why."""

    field: str
    reason: str
    rule: str = "invalid"
    source: Source = "body"
    extra: dict[str, Any] = dc_field(default_factory=dict)  # e.g. `choices`, `minimum` for that rule


class CatalogError(Exception):
    pass


class NotFoundError(CatalogError):
    pass


class GoneError(CatalogError):
    """The resource existed and was deleted (the contract's 410)."""


class ConflictError(CatalogError):
    def __init__(self, message: str, conflicting_entity_id: str | None = None) -> None:
        super().__init__(message)
        self.conflicting_entity_id = conflicting_entity_id


class InvalidError(CatalogError):
    """Bad input or a forbidden state change; nothing was written."""

    def __init__(self, message: str, issues: list[FieldIssue]) -> None:
        super().__init__(message)
        self.issues = issues

    @classmethod
    def field(cls, field: str, reason: str, rule: str = "invalid", source: Source = "body") -> InvalidError:
        return cls(f"Invalid [{field}]: {reason}", [FieldIssue(field, reason, rule, source)])
