"""The local admin token: reused across restarts via the env file, registered at every start
(the config table lives in moto's memory, so it is empty each time)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from local.envfile import read_env_file

TOKEN_KEY = "METERLINE_TOKEN"
ADMIN_ROLE = "admin"
ADMIN_NAME = "local-admin"

EnsureToken = Callable[[str, str, str], None]
NewToken = Callable[[], str]


def _default_ensure(raw_token: str, role: str, name: str) -> None:
    from shared.auth.tokens import ensure_token  # imported late: needs the AWS env set first

    ensure_token(raw_token, role, name)


def _default_new() -> str:
    from shared.auth.tokens import new_token_value

    return new_token_value()


def bootstrap_admin_token(
    env_file: Path, ensure: EnsureToken | None = None, new_value: NewToken | None = None
) -> str:
    token = read_env_file(env_file).get(TOKEN_KEY) or (new_value or _default_new)()
    (ensure or _default_ensure)(token, ADMIN_ROLE, ADMIN_NAME)
    return token
