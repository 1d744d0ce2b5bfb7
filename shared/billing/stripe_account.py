"""The Stripe account behind the configured secret key: the Stripe app is installed only when one is
configured and Stripe confirms it (`GET /v1/account`), so its account id is never made up.

The key comes from the settings: `STRIPE_API_KEY` directly (local runs), or the name of an SSM
SecureString parameter holding it (`STRIPE_API_KEY_PARAMETER`, on AWS), read once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

STRIPE_TIMEOUT_S = 8


@dataclass(frozen=True)
class StripeAccount:
    account_id: str
    livemode: bool
    masked_api_key: str


class StripeUnauthorized(Exception):
    """Stripe refused the configured key."""


class StripeRejected(Exception):
    """Stripe refused the request's parameters (its message says which)."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


class StripeUnreachable(Exception):
    """Stripe did not answer (network, rate limit, its own error): the same request may be retried."""


@dataclass(frozen=True)
class PortalSession:
    id: str
    stripe_customer_id: str
    configuration_id: str
    livemode: bool
    created_at: datetime
    return_url: str | None
    locale: str | None
    url: str


def mask(api_key: str) -> str:
    """`sk_test_51Hx…wxyz`: the key's kind and mode, and its last four characters."""
    parts = api_key.split("_")
    prefix = "_".join(parts[:2]) + "_" if len(parts) > 2 else ""
    return f"{prefix}***{api_key[-4:]}" if len(api_key) > len(prefix) + 4 else "***"


class StripeAccounts:
    """Looks up the account of a secret key with Stripe's own client (`api_base` for a stand-in)."""

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        self.api_key = api_key
        self.api_base = api_base

    def _client(self) -> stripe.StripeClient:
        # Bounded: an API request has 29 s (API Gateway); Stripe's default timeout is 80 s.
        kwargs: dict[str, Any] = {
            "max_network_retries": 1,
            "http_client": stripe.new_default_http_client(timeout=STRIPE_TIMEOUT_S),
        }
        if self.api_base:
            kwargs["base_addresses"] = {"api": self.api_base}
        return stripe.StripeClient(self.api_key, **kwargs)

    def portal_session(
        self, customer: str, return_url: str | None, locale: str | None, configuration: str | None
    ) -> PortalSession:
        params: dict[str, Any] = {"customer": customer}
        for name, value in (("return_url", return_url), ("locale", locale), ("configuration", configuration)):
            if value is not None:
                params[name] = value
        try:
            session = self._client().v1.billing_portal.sessions.create(params=params)  # type: ignore[arg-type]
        except stripe.InvalidRequestError as exc:
            raise StripeRejected(exc.user_message or str(exc), exc.param) from exc
        except stripe.AuthenticationError as exc:
            raise StripeUnauthorized(str(exc)) from exc
        except stripe.StripeError as exc:
            raise StripeUnreachable(str(exc)) from exc
        configuration_id = session.configuration
        return PortalSession(
            id=str(session.id),
            stripe_customer_id=str(session.customer),
            configuration_id=configuration_id
            if isinstance(configuration_id, str)
            else str(configuration_id.id),
            livemode=bool(session.livemode),
            created_at=datetime.fromtimestamp(int(session.created), UTC),
            return_url=session.return_url,
            locale=session.locale,
            url=str(session.url),
        )

    def current(self) -> StripeAccount:
        client = self._client()
        try:
            account = client.v1.accounts.retrieve_current()
        except stripe.AuthenticationError as exc:
            raise StripeUnauthorized(str(exc)) from exc
        livemode = self.api_key.startswith(("sk_live_", "rk_live_"))
        return StripeAccount(str(account.id), livemode, mask(self.api_key))


def read_secret_parameter(ssm: Any, name: str) -> str:
    """The SecureString's value (decrypted); "" while the parameter does not exist (not configured)."""
    try:
        return str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return ""
