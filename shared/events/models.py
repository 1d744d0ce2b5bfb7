"""What an event listing asks for and returns: the parsed query (orders, filters, opaque cursors)
and a page of stored events. requests.py builds the query from `GET /events`; views.py renders."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.core.errors import InvalidInput
from shared.core.listing import StringFilter

ORDERS = ("time", "ingested_at", "stored_at")
DEFAULT_PAGE_SIZE = 100
_SORT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z(#.*)?$", re.DOTALL)
_CURSOR_MAC = b"meterline/events/cursor/v1"  # integrity check against edited cursors, not a secret


# -- cursor ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """A position in one listing order: `key` is an index sort key (or a day boundary).

    `key=None` (only with `page[before]`) means "from the far end": the `last` link.
    `inclusive` positions include the item at `key` (used for `previous`/`next` of empty pages).
    """

    key: str | None
    order: str
    desc: bool
    inclusive: bool = False

    def encode(self) -> str:
        payload = orjson.dumps(
            {"k": self.key, "o": self.order, "d": "desc" if self.desc else "asc", "i": self.inclusive}
        )
        mac = hashlib.blake2b(payload, key=_CURSOR_MAC, digest_size=8).digest()
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, name: str) -> Cursor:
        invalid = InvalidInput.field(
            name, "is not a valid cursor; use the `next`/`previous` link of a response", "invalid", "query"
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise invalid from None
        payload, mac = raw[:-8], raw[-8:]
        # Only the canonical encoding is ours: base64 ignores the spare bits of the last character.
        canonical = base64.urlsafe_b64encode(raw).decode().rstrip("=") == token
        if (
            not canonical
            or len(raw) <= 8
            or hashlib.blake2b(payload, key=_CURSOR_MAC, digest_size=8).digest() != mac
        ):
            raise invalid
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise invalid from None
        key = data.get("k") if isinstance(data, dict) else 0
        if (
            not isinstance(data, dict)
            or data.get("o") not in ORDERS
            or data.get("d") not in ("asc", "desc")
            or not isinstance(data.get("i"), bool)
            or not (key is None or (isinstance(key, str) and _SORT_KEY.match(key)))
        ):
            raise invalid
        return cls(key, data["o"], data["d"] == "desc", data["i"])


# -- filters --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeRange:
    """Bounds on one of the event's instants (`time`, `ingested_at`, `stored_at`)."""

    field: str
    lower: datetime | None = None
    lower_inclusive: bool = True
    upper: datetime | None = None
    upper_inclusive: bool = True

    def matches(self, value: datetime) -> bool:
        if self.lower is not None and (
            value < self.lower or (value == self.lower and not self.lower_inclusive)
        ):
            return False
        return not (
            self.upper is not None
            and (value > self.upper or (value == self.upper and not self.upper_inclusive))
        )

    @property
    def empty(self) -> bool:
        if self.lower is None or self.upper is None:
            return False
        return self.lower > self.upper or (
            self.lower == self.upper and not (self.lower_inclusive and self.upper_inclusive)
        )

    def tightened(self, op: str, value: datetime) -> TimeRange:
        lower, lower_inc, upper, upper_inc = (
            self.lower,
            self.lower_inclusive,
            self.upper,
            self.upper_inclusive,
        )
        if op in ("eq", "gt", "gte"):
            inc = op != "gt"
            if lower is None or value > lower or (value == lower and not inc):
                lower, lower_inc = value, inc
        if op in ("eq", "lt", "lte"):
            inc = op != "lt"
            if upper is None or value < upper or (value == upper and not inc):
                upper, upper_inc = value, inc
        return TimeRange(self.field, lower, lower_inc, upper, upper_inc)

    def index_span(self) -> tuple[datetime | None, datetime | None]:
        """Loose [lower, upper) bounds on the indexed instant (microseconds) for this range.

        Events stored by earlier releases show instants truncated to milliseconds while their
        index holds the microseconds (stored_at), so the span is widened to whole milliseconds;
        the exact test is `matches` on the shown value.
        """
        lower = self.lower.replace(microsecond=self.lower.microsecond // 1000 * 1000) if self.lower else None
        upper = None
        if self.upper is not None:
            upper = self.upper.replace(microsecond=self.upper.microsecond // 1000 * 1000)
            upper += timedelta(milliseconds=1)
        return lower, upper


@dataclass(frozen=True)
class CustomerFilter:
    op: str  # eq | oeq | neq
    ids: tuple[str, ...]


@dataclass(frozen=True)
class ListQuery:
    order: str = "time"
    desc: bool = True
    size: int = DEFAULT_PAGE_SIZE
    after: Cursor | None = None
    before: Cursor | None = None
    strings: tuple[StringFilter, ...] = ()
    customer: CustomerFilter | None = None
    ranges: dict[str, TimeRange] = field(default_factory=dict)
    # The request's query parameters, for building links that keep them.
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListedEvent:
    """A stored event record (`stored_event_from_item`) and the customer its subject resolves to now."""

    record: dict[str, Any]
    customer_id: str | None


@dataclass(frozen=True)
class EventPage:
    events: list[ListedEvent]
    next: Cursor | None  # where the next / previous page starts (None: there is none)
    previous: Cursor | None
    last: Cursor  # the far end, for the `last` link
