"""Listing in the domain: one page as use cases return it (views render it with the page's numbers),
string filters and the `sort` spec (attribute names of the domain objects, not of the wire)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from shared.core.errors import InvalidInput

T = TypeVar("T")


class PageLike(Protocol):
    def slice(self, items: Sequence[T]) -> list[T]: ...


@dataclass(frozen=True)
class Listed(Generic[T]):
    items: list[T]  # the requested page
    total: int  # matches over all pages

    @classmethod
    def of(cls, page: PageLike, matches: Sequence[T]) -> Listed[T]:
        return cls(page.slice(matches), len(matches))


@dataclass(frozen=True)
class StringFilter:
    """One string condition on a field: eq, neq, contains, or their comma-separated `o` forms."""

    field: str
    op: str
    value: str

    def matches(self, actual: str | None) -> bool:
        actual = actual or ""
        if self.op == "eq":
            return actual == self.value
        if self.op == "neq":
            return actual != self.value
        if self.op == "contains":
            return self.value.lower() in actual.lower()
        options = [v for v in self.value.split(",") if v != ""]
        if self.op == "oeq":
            return actual in options
        return any(v.lower() in actual.lower() for v in options)  # ocontains


def sort_items(
    items: list[T],
    sort: str | None,
    allowed: dict[str, Callable[[T], Any]],
    default: str,
    default_desc: bool = False,
) -> list[T]:
    """Apply `field [asc|desc],...` (stable, last key first); InvalidInput names the `sort` parameter."""
    specs: list[tuple[str, bool]] = []
    for part in (sort or default).split(","):
        words = part.strip().split()
        if not words:
            continue
        name = words[0]
        if name not in allowed:
            reason = f"unknown sort attribute [{name}]; supported: {', '.join(allowed)}"
            raise InvalidInput.field("sort", reason, "enum", "query", tuple(allowed))
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            reason = f"invalid sort order in [{part.strip()}]; use asc or desc"
            raise InvalidInput.field("sort", reason, "invalid", "query")
        desc = words[1].lower() == "desc" if len(words) == 2 else default_desc
        specs.append((name, desc))
    for name, desc in reversed(specs):
        items = sorted(items, key=allowed[name], reverse=desc)
    return items
