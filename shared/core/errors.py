"""Domain errors: what a use case reports when it can't do what it was asked.

Services raise these and know nothing of HTTP; the API function maps them to problem+json in one
place (`functions/api/app.py`). `InvalidInput` names the offending fields with where each came
from (body, query, path), because only the request parser knows the wire names and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Source = Literal["body", "query", "path", "header"]


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    rule: str = "invalid"
    source: Source = "body"
    choices: tuple[str, ...] | None = None


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class Gone(DomainError):
    """The thing asked for existed and was deleted (the contract's 410)."""


class Unavailable(DomainError):
    """A dependency failed transiently; the caller may retry the same request (the contract's 503)."""


class Conflict(DomainError):
    """The request contradicts the current state; `conflicting` names the other entity (entities)."""

    def __init__(self, message: str, **conflicting: Any) -> None:
        super().__init__(message)
        self.conflicting = conflicting


class InvalidInput(DomainError):
    """The input breaks a rule; `fields` says which (a rule about the input as a whole names "body")."""

    def __init__(self, message: str, fields: tuple[FieldError, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields or (FieldError("body", message),)

    @classmethod
    def field(
        cls,
        name: str,
        reason: str,
        rule: str = "invalid",
        source: Source = "body",
        choices: tuple[str, ...] | None = None,
    ) -> InvalidInput:
        return cls(f"Invalid [{name}]: {reason}", (FieldError(name, reason, rule, source, choices),))
