"""The `.local/meterline.env` file: how scripts and tests find the running stack.

Plain `KEY=VALUE` lines so both `source` (bash) and python can read it. Writes go through a
temp file + rename, so a reader never sees a half-written file: its appearance (or the
presence of METERLINE_URL in it) means "the stack is up".
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

URL_KEYS: tuple[str, ...] = ("METERLINE_URL", "METERLINE_MOTO_URL")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; comments, blank lines and an `export ` prefix are tolerated."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Atomically replace `path` with `values` (creating parent directories)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "# Written by `python -m local`; METERLINE_URL is present only while the stack runs.\n"
    body += "".join(f"{key}={value}\n" for key, value in values.items())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        os.chmod(tmp, 0o600)  # holds an admin token
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_env_file(path: Path, set_values: Mapping[str, str], drop: Iterable[str] = ()) -> dict[str, str]:
    """Merge into the existing file (unknown keys are kept) and return the new content."""
    values = read_env_file(path)
    for key in drop:
        values.pop(key, None)
    values.update(set_values)
    write_env_file(path, values)
    return values


def forget_urls(path: Path) -> None:
    """Drop the "stack is running" keys but keep the token, so the next start reuses it."""
    if path.exists() and any(k in read_env_file(path) for k in URL_KEYS):
        update_env_file(path, {}, drop=URL_KEYS)
