"""Contract `Labels`: keys 1-63 chars not starting with a reserved prefix; values patterned."""

from __future__ import annotations

import re

_VALUE = re.compile(r"^[a-z0-9A-Z]([a-z0-9A-Z\-._]*[a-z0-9A-Z]+)?$")
_RESERVED = ("kong", "konnect", "mesh", "kic", "_")


def check_labels(labels: dict[str, str] | None) -> dict[str, str] | None:
    if labels is None:
        return None
    if len(labels) > 50:
        raise ValueError("at most 50 labels are allowed")
    for key, value in labels.items():
        if not 1 <= len(key) <= 63:
            raise ValueError(f"label key [{key}] must be 1-63 characters")
        if key.startswith(_RESERVED):
            raise ValueError(f"label key [{key}] must not start with kong, konnect, mesh, kic or _")
        if not isinstance(value, str) or not 1 <= len(value) <= 63 or not _VALUE.match(value):
            raise ValueError(f"label [{key}] value must be 1-63 alphanumerics, '-', '.' or '_'")
    return labels
