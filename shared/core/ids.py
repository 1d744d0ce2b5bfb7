"""Identifiers: ULIDs, as the contract's `ULID` schema requires."""

from __future__ import annotations

import re

from ulid import ULID

ULID_PATTERN = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def new_id() -> str:
    return str(ULID())


def is_ulid(value: str) -> bool:
    return bool(ULID_PATTERN.match(value))
