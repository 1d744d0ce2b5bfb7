"""Catalog domain errors: plain exceptions, no HTTP. Each is one of the core domain errors
(`shared.core.errors`), so the API maps them to problem+json in its one place (functions/api/app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from shared.core import errors

Source = errors.Source


@dataclass(frozen=True)
class FieldIssue:
    """One bad field: its path (`phases[0].rate_cards[1].feature.id`), where it came from, and why."""

    field: str
    reason: str
    rule: str = "invalid"
    source: Source = "body"
    extra: dict[str, Any] = dc_field(default_factory=dict)  # e.g. `choices`, `minimum` for that rule


class CatalogError(errors.DomainError):
    pass


class NotFoundError(CatalogError, errors.NotFound):
    pass


class GoneError(CatalogError, errors.Gone):
    """The resource existed and was deleted (the contract's 410)."""


class ConflictError(CatalogError, errors.Conflict):
    def __init__(self, message: str, conflicting_entity_id: str | None = None) -> None:
        extra = {"conflicting_entity_id": conflicting_entity_id} if conflicting_entity_id else {}
        errors.Conflict.__init__(self, message, **extra)
        self.conflicting_entity_id = conflicting_entity_id


class InvalidError(CatalogError, errors.InvalidInput):
    """Bad input or a forbidden state change; nothing was written."""

    def __init__(self, message: str, issues: list[FieldIssue]) -> None:
        fields = tuple(errors.FieldError(i.field, i.reason, i.rule, i.source, extra=i.extra) for i in issues)
        errors.InvalidInput.__init__(self, message, fields)
        self.issues = issues

    @classmethod
    def field(
        cls,
        name: str,
        reason: str,
        rule: str = "invalid",
        source: errors.Source = "body",
        choices: tuple[str, ...] | None = None,
    ) -> InvalidError:
        extra = {"choices": list(choices)} if choices is not None else {}
        return cls(f"Invalid [{name}]: {reason}", [FieldIssue(name, reason, rule, source, extra)])
