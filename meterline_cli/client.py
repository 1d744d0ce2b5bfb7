"""A small HTTP client for the Meterline API (stdlib only: the CLI needs no extra runtime deps)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

PREFIX = "/v3/openmeter"
# (method, url, headers, body) -> (status, response text); tests swap in the in-process app.
Send = Callable[[str, str, dict[str, str], bytes | None], tuple[int, str]]


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {detail or body}")
        self.status = status
        self.body = body


def urllib_send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class MeterlineClient:
    def __init__(self, base_url: str, token: str, send: Send | None = None) -> None:
        base = base_url.rstrip("/")
        self.base = base if base.endswith(PREFIX) else base + PREFIX
        self.token = token
        self.send = send or urllib_send

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, text = self.send(method, url, headers, data)
        parsed: Any = json.loads(text) if text else None
        if status >= 400:
            raise ApiError(status, parsed)
        return parsed

    # -- tokens ------------------------------------------------------------------------------------
    def create_token(self, name: str, role: str) -> dict[str, Any]:
        return dict(self.request("POST", "/tokens", {"name": name, "role": role}))

    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token, following page pagination."""
        out: list[dict[str, Any]] = []
        number = 1
        while True:
            page = self.request("GET", "/tokens", params={"page[size]": 1000, "page[number]": number})
            out.extend(page["data"])
            if len(out) >= page["meta"]["page"]["total"] or not page["data"]:
                return out
            number += 1

    def revoke_token(self, token_id: str) -> None:
        self.request("DELETE", f"/tokens/{token_id}")
