"""One page of a listing, as use cases return it (views render it with the page's numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

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
