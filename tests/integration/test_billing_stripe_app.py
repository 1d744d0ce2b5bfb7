"""The Stripe app is installed only when a Stripe secret key is configured and Stripe confirms its
account: a stand-in for Stripe's API on loopback answers `GET /v1/account` as Stripe does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared import bootstrap
from shared.billing.stripe_account import mask
from tests.support.harness import Stack

GOOD_KEY = "sk_test_51Meterline0000000000000000abcd"
ACCOUNT = "acct_1MeterlineTest01"


class _Stripe(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_GET(self) -> None:
        type(self).calls.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
        elif self.path == "/v1/account":
            self._send(200, {"id": ACCOUNT, "object": "account", "country": "US"})
        else:
            self._send(404, {"error": {"type": "invalid_request_error", "message": "no such route"}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def stripe_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stripe.calls = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def configure(monkeypatch: pytest.MonkeyPatch, key: str, base: str) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", key)
    monkeypatch.setenv("STRIPE_API_BASE", base)
    bootstrap.get_settings.cache_clear()
    bootstrap.apps.cache_clear()
    bootstrap.billing_profiles.cache_clear()


def test_a_configured_key_installs_stripe_with_the_account_stripe_reports(
    stack: Stack, stripe_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, GOOD_KEY, stripe_api)
    apps = {a["type"]: a for a in stack.request("GET", "/apps").json()["data"]}
    assert set(apps) == {"sandbox", "external_invoicing", "stripe"}
    app = apps["stripe"]
    assert (app["account_id"], app["livemode"], app["status"]) == (ACCOUNT, False, "ready")
    assert app["masked_api_key"] == "sk_test_***abcd" == mask(GOOD_KEY)
    assert GOOD_KEY not in json.dumps(apps)
    assert stack.request("GET", f"/apps/{app['id']}").json() == app
    assert _Stripe.calls == ["/v1/account"]  # asked once, then stored
    # a profile can invoice and collect through it
    body = {
        "name": "Stripe",
        "supplier": {},
        "workflow": {},
        "apps": {"tax": {"id": app["id"]}, "invoicing": {"id": app["id"]}, "payment": {"id": app["id"]}},
        "default": True,
    }
    assert stack.request("POST", "/profiles", body).status == 201
    # without the key, Stripe is no longer installed
    monkeypatch.delenv("STRIPE_API_KEY")
    bootstrap.get_settings.cache_clear()
    bootstrap.apps.cache_clear()
    assert {a["type"] for a in stack.request("GET", "/apps").json()["data"]} == {
        "sandbox",
        "external_invoicing",
    }
    assert stack.request("GET", f"/apps/{app['id']}").status == 404


def test_a_key_stripe_refuses_installs_nothing(
    stack: Stack, stripe_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, "sk_test_revoked0000000000wxyz", stripe_api)
    apps = stack.request("GET", "/apps").json()["data"]
    assert {a["type"] for a in apps} == {"sandbox", "external_invoicing"}
    assert _Stripe.calls == ["/v1/account"]


def test_the_key_can_come_from_an_ssm_secure_string(
    stack: Stack, stripe_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssm = bootstrap.clients.ssm()
    ssm.put_parameter(Name="/meterline/stripe", Value=GOOD_KEY, Type="SecureString")
    configure(monkeypatch, "", stripe_api)
    monkeypatch.setenv("STRIPE_API_KEY_PARAMETER", "/meterline/stripe")
    bootstrap.get_settings.cache_clear()
    stripe_apps = [a for a in stack.request("GET", "/apps").json()["data"] if a["type"] == "stripe"]
    assert [a["account_id"] for a in stripe_apps] == [ACCOUNT]


def test_mask_keeps_the_kind_and_the_last_four() -> None:
    assert mask("sk_live_abcdefgh1234") == "sk_live_***1234"
    assert mask("rk_test_x") == "***"


def test_a_missing_ssm_parameter_means_stripe_is_not_configured(
    stack: Stack, stripe_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, "", stripe_api)
    monkeypatch.setenv("STRIPE_API_KEY_PARAMETER", "/meterline/not-created")
    bootstrap.get_settings.cache_clear()
    resp = stack.request("GET", "/apps")
    assert resp.status == 200
    assert {a["type"] for a in resp.json()["data"]} == {"sandbox", "external_invoicing"}
    assert _Stripe.calls == []
