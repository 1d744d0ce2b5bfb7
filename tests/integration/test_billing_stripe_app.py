"""The Stripe app is installed only when a Stripe secret key is configured and Stripe confirms its
account: a stand-in for Stripe's API on loopback answers `GET /v1/account` as Stripe does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from shared import bootstrap
from shared.billing.stripe_account import mask
from tests.support import contract
from tests.support.contract import full_headers  # noqa: F401  (fixture)
from tests.support.harness import Stack
from tests.support.problems import problem

pytestmark = pytest.mark.usefixtures("full_headers")
GOOD_KEY = "sk_test_51Meterline0000000000000000abcd"
ACCOUNT = "acct_1MeterlineTest01"


class _Stripe(BaseHTTPRequestHandler):
    calls: list[str] = []
    forms: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).calls.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
        elif self.path == "/v1/account":
            self._send(200, {"id": ACCOUNT, "object": "account", "country": "US"})
        else:
            self._send(404, {"error": {"type": "invalid_request_error", "message": "no such route"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        type(self).calls.append(self.path)
        type(self).forms.append(form)
        if self.headers.get("Authorization") != f"Bearer {GOOD_KEY}":
            self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
        elif self.path != "/v1/billing_portal/sessions":
            self._send(404, {"error": {"type": "invalid_request_error", "message": "no such route"}})
        elif not form.get("customer", "").startswith("cus_known"):
            error = {"type": "invalid_request_error", "message": "No such customer", "param": "customer"}
            self._send(400, {"error": error})
        elif form.get("return_url") == "not-a-url":
            error = {"type": "invalid_request_error", "message": "Not a valid URL", "param": "return_url"}
            self._send(400, {"error": error})
        else:
            self._send(
                200,
                {
                    "id": "bps_1Meterline",
                    "object": "billing_portal.session",
                    "configuration": form.get("configuration", "bpc_default"),
                    "created": 1767225600,
                    "customer": form["customer"],
                    "livemode": False,
                    "locale": form.get("locale"),
                    "return_url": form.get("return_url"),
                    "url": "https://billing.stripe.com/p/session/test_1Meterline",
                },
            )

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
    _Stripe.forms = []
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
    assert stack.request("GET", "/apps").status == 200
    assert _Stripe.calls == ["/v1/account"]  # not asked again for a minute


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


def test_a_portal_session_for_a_customer_billed_through_stripe(
    stack: Stack, stripe_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, GOOD_KEY, stripe_api)
    apps = {a["type"]: a["id"] for a in stack.request("GET", "/apps").json()["data"]}
    sandbox, stripe_app = apps["sandbox"], apps["stripe"]
    refs = {"tax": {"id": sandbox}, "invoicing": {"id": sandbox}}
    body = {"name": "Sandbox", "supplier": {}, "workflow": {}, "default": True}
    stack.request("POST", "/profiles", {**body, "apps": {**refs, "payment": {"id": sandbox}}})
    stripe_profile = stack.request(
        "POST",
        "/profiles",
        {**body, "name": "Stripe", "default": False, "apps": {**refs, "payment": {"id": stripe_app}}},
    ).json()
    customer = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()
    path = f"/customers/{customer['id']}/billing/stripe/portal-sessions"
    options = {"stripe_options": {"return_url": "https://example.com/account", "locale": "en"}}

    body_ = problem(stack.request("POST", path, options), 400, "customerId")  # default profile: sandbox
    assert "does not collect payments with Stripe" in body_["detail"]
    stack.request(
        "PUT", f"/customers/{customer['id']}/billing", {"billing_profile": {"id": stripe_profile["id"]}}
    )
    body_ = problem(stack.request("POST", path, options), 400, "customerId")
    assert "no Stripe customer id" in body_["detail"]
    assert _Stripe.calls == ["/v1/account"]  # refused before asking Stripe

    stack.request("PUT", "/customers/acme/billing/app-data", {"stripe": {"customer_id": "cus_known1"}})
    resp = stack.request("POST", path, options)
    assert resp.status == 201, resp
    contract.validate(resp, "create-customer-stripe-portal-session")
    assert resp.json() == {
        "id": "bps_1Meterline",
        "stripe_customer_id": "cus_known1",
        "configuration_id": "bpc_default",
        "livemode": False,
        "created_at": "2026-01-01T00:00:00Z",
        "return_url": "https://example.com/account",
        "locale": "en",
        "url": "https://billing.stripe.com/p/session/test_1Meterline",
    }
    assert _Stripe.forms[-1] == {
        "customer": "cus_known1",
        "return_url": "https://example.com/account",
        "locale": "en",
    }
    bad = {"stripe_options": {"return_url": "not-a-url"}}
    problem(stack.request("POST", path, bad), 400, "stripe_options.return_url")
    problem(stack.request("POST", path, {}), 400, "stripe_options")


def test_a_portal_session_without_stripe_configured_is_refused(stack: Stack) -> None:
    customer = stack.request("POST", "/customers", {"key": "acme", "name": "Acme"}).json()
    path = f"/customers/{customer['id']}/billing/stripe/portal-sessions"
    problem(stack.request("POST", path, {"stripe_options": {}}), 400, "customerId")
    stack.request("DELETE", f"/customers/{customer['id']}")
    problem(stack.request("POST", path, {"stripe_options": {}}), 410)
