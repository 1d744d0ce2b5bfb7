"""Standard Webhooks signatures (also what Svix receivers verify).

`v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>` with key = base64-decode(secret sans `whsec_`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

SECRET_PREFIX = "whsec_"
SECRET_PATTERN = re.compile(r"^(whsec_)?[a-zA-Z0-9+/=]{32,100}$")


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key; ValueError if the secret is not valid base64 (the pattern alone allows that)."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("must be base64 (optionally prefixed with whsec_)") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Both header spellings: `webhook-*` (Standard Webhooks) and `svix-*` (Svix libraries)."""
    signature = sign(secret, msg_id, timestamp, body)
    headers: dict[str, str] = {}
    for prefix in ("webhook", "svix"):
        headers[f"{prefix}-id"] = msg_id
        headers[f"{prefix}-timestamp"] = str(timestamp)
        headers[f"{prefix}-signature"] = signature
    return headers
