"""Sort keys of stored events: fixed-width instants, shared by the blocks, the listing and usage."""

from __future__ import annotations

from datetime import UTC, datetime


def sortable(t: datetime) -> str:
    """Fixed width (four-digit year, always microseconds) so that string order is time order."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
