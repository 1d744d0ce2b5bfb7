"""Billing settings use cases: installed apps, billing profiles, customer billing overrides.

Typed inputs in (`requests`), domain objects out, `shared.core.errors` raised. Rules (product.md §15,
engine-rules §2.9):
- Exactly one default profile. The first profile created becomes the default whatever it asks; a
  create or update with `default: true` takes the flag from the current default in the same
  transaction (retried when another write moved it first, so concurrent takers leave exactly one).
  The default can't be unset directly: another profile takes it.
- A profile's apps are fixed at creation and must be installed apps.
- A profile in use can't be deleted: the default (409) or one pinned by a customer override (409 naming
  a customer). Overrides of deleted customers no longer pin: the delete releases them first.
- A customer's effective profile is its override or else the default; the invoice code snapshots it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger
from stripe import StripeError
from ulid import ULID

from shared.billing.models import App, AppData, AppStatus, AppType, CustomerBilling, Profile
from shared.billing.repository import BillingRepository, WriteConflict
from shared.billing.requests import CustomerBillingInput, PortalOptions, ProfileInput
from shared.billing.stripe_account import (
    PortalSession,
    StripeAccount,
    StripeRejected,
    StripeUnauthorized,
    StripeUnreachable,
)
from shared.core.errors import Conflict, FieldError, Gone, InvalidInput, NotFound, Unavailable
from shared.core.ids import new_id
from shared.core.listing import Listed, PageLike
from shared.core.observability import SERVICE
from shared.core.timeutil import Clock

log = Logger(service=SERVICE, child=True)

# A lost race on the default pointer or a revision is retried this many times before a 409.
MAX_ATTEMPTS = 5


# -- ports ----------------------------------------------------------------------------------------
class CustomerRecord(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def deleted_at(self) -> datetime | None: ...


class Customers(Protocol):
    """The customers port (CustomerService): billing reads customers, customers never read billing."""

    def get(self, id_or_key: str, include_deleted: bool = False) -> CustomerRecord: ...


# -- apps -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuiltinApp:
    type: AppType
    name: str
    description: str


BUILTIN_APPS = (
    BuiltinApp(AppType.SANDBOX, "Sandbox", "Sandbox app can be used for testing billing features."),
    BuiltinApp(
        AppType.EXTERNAL_INVOICING,
        "External Invoicing",
        "External Invoicing app enables integration with third-party invoicing or payment systems.",
    ),
)
# After Stripe refused the key or did not answer, the Stripe app is looked up again this much later.
STRIPE_RETRY_AFTER = timedelta(minutes=1)
# Fixed ids (a fixed timestamp, randomness from the type): every container provisions the same items.
_APP_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def builtin_app_id(app_type: AppType) -> str:
    millis = int(_APP_EPOCH.timestamp() * 1000)
    digest = hashlib.sha256(f"meterline-app:{app_type.value}".encode()).digest()[:10]
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + digest))


def stripe_app_id(account_id: str, livemode: bool) -> str:
    millis = int(_APP_EPOCH.timestamp() * 1000)
    digest = hashlib.sha256(f"meterline-app:stripe:{account_id}:{livemode}".encode()).digest()[:10]
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + digest))


class StripeAccountLookup(Protocol):
    """The Stripe port (`stripe_account.StripeAccounts`): the account of the configured key."""

    api_key: str

    def current(self) -> StripeAccount: ...

    def portal_session(
        self, customer: str, return_url: str | None, locale: str | None, configuration: str | None
    ) -> PortalSession: ...


class AppService:
    """The installed apps: sandbox and external invoicing, always; Stripe when a secret key is
    configured and Stripe confirms its account (one call, then stored). A key Stripe refuses, or
    Stripe unreachable, leaves Stripe unlisted (logged) rather than shown with made-up data."""

    def __init__(
        self, repo: BillingRepository, stripe: StripeAccountLookup | None = None, clock: Clock | None = None
    ) -> None:
        self.repo = repo
        self.stripe = stripe
        self.clock = clock or Clock()
        self._stripe_failed_at: datetime | None = None

    def _provision(self) -> list[App]:
        now = self.clock.now()
        for b in BUILTIN_APPS:
            app = App(builtin_app_id(b.type), b.type, b.name, b.description, AppStatus.READY, now, now)
            self.repo.put_app_if_absent(app)  # concurrent provisioning: the first one stays
        return self.repo.list_apps()

    def _install_stripe(self) -> App | None:
        assert self.stripe is not None
        now = self.clock.now()
        if self._stripe_failed_at is not None and now - self._stripe_failed_at < STRIPE_RETRY_AFTER:
            return None  # asked recently and failed: don't make every request wait for Stripe
        try:
            account = self.stripe.current()
        except (StripeUnauthorized, StripeError) as exc:
            self._stripe_failed_at = now
            log.warning(
                "Stripe app not installed: Stripe refused or did not answer", extra={"error": str(exc)}
            )
            return None
        app = App(
            stripe_app_id(account.account_id, account.livemode),
            AppType.STRIPE,
            "Stripe",
            "Stripe integration allows you to collect payments with Stripe.",
            AppStatus.READY,
            now,
            now,
            account_id=account.account_id,
            livemode=account.livemode,
            masked_api_key=account.masked_api_key,
            key_fingerprint=_fingerprint(self.stripe.api_key),
        )
        self.repo.put_app(app)  # the key changed to another of the same account: this key's record
        return app

    def installed(self) -> list[App]:
        apps = self.repo.list_apps()
        if not {b.type for b in BUILTIN_APPS} <= {a.type for a in apps}:
            apps = self._provision()
        # A Stripe app is installed while the key that installed it is the configured one.
        fingerprint = _fingerprint(self.stripe.api_key) if self.stripe else None
        out = [a for a in apps if a.type is not AppType.STRIPE or a.key_fingerprint == fingerprint]
        if self.stripe is not None and not any(a.type is AppType.STRIPE for a in out):
            stripe_app = self._install_stripe()
            if stripe_app is not None:
                out.append(stripe_app)
        return sorted(out, key=lambda a: a.id)

    def list(self, page: PageLike) -> Listed[App]:
        return Listed.of(page, self.installed())

    def get(self, app_id: str) -> App:
        app = next((a for a in self.installed() if a.id == app_id), None)
        if app is None:
            raise NotFound(f"App [{app_id}] not found")
        return app


def _fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


# -- profiles -------------------------------------------------------------------------------------
class ProfileService:
    def __init__(
        self, repo: BillingRepository, apps: AppService, customers: Customers, clock: Clock | None = None
    ) -> None:
        self.repo = repo
        self.apps = apps
        self.customers = customers
        self.clock = clock or Clock()

    def _load(self, profile_id: str) -> tuple[Profile, int, int]:
        found = self.repo.get_profile(profile_id)
        if found is None or found[0].deleted_at is not None:
            raise NotFound(f"Billing profile [{profile_id}] not found")
        return found

    def get(self, profile_id: str) -> Profile:
        return self._load(profile_id)[0]

    def list(self, page: PageLike) -> Listed[Profile]:
        return Listed.of(page, self.repo.list_profiles())

    def default(self) -> Profile | None:
        default_id = self.repo.default_id()
        return self._load(default_id)[0] if default_id else None

    def _check_apps(self, inp: ProfileInput) -> None:
        assert inp.apps is not None
        installed = {a.id for a in self.apps.installed()}
        wanted = {"tax": inp.apps.tax, "invoicing": inp.apps.invoicing, "payment": inp.apps.payment}
        bad = [
            FieldError(
                f"apps.{role}.id", f"app [{app_id}] is not installed (GET /apps lists the installed apps)"
            )
            for role, app_id in wanted.items()
            if app_id not in installed
        ]
        if bad:
            raise InvalidInput(f"Invalid [{bad[0].field}]: {bad[0].reason}", tuple(bad))

    def create(self, inp: ProfileInput) -> Profile:
        assert inp.apps is not None
        self._check_apps(inp)
        now = self.clock.now()
        profile = Profile(
            id=new_id(),
            name=inp.name,
            description=inp.description,
            labels=inp.labels,
            supplier=inp.supplier,
            workflow=inp.workflow,
            apps=inp.apps,
            created_at=now,
            updated_at=now,
        )
        for _ in range(MAX_ATTEMPTS):
            current_default = self.repo.default_id()
            take = inp.default or current_default is None  # the first profile becomes the default
            try:
                self.repo.create_profile(profile, take, current_default)
            except WriteConflict:
                continue  # the default moved (or was first taken) concurrently: read it again
            return replace(profile, default=take)
        raise Conflict("The default billing profile kept changing concurrently; retry")

    def update(self, profile_id: str, inp: ProfileInput) -> Profile:
        for _ in range(MAX_ATTEMPTS):
            current, rev, _pinned = self._load(profile_id)
            if current.default and not inp.default:
                raise InvalidInput.field(
                    "default",
                    "the default billing profile stays the default until another profile is made the "
                    "default (create or update that one with default: true)",
                )
            updated = replace(
                current,
                name=inp.name,
                description=inp.description,
                labels=inp.labels,
                supplier=inp.supplier,
                workflow=inp.workflow,
                updated_at=self.clock.now(),
            )
            take = inp.default and not current.default
            try:
                self.repo.update_profile(updated, rev, take, self.repo.default_id() if take else None)
            except WriteConflict:
                continue  # changed, deleted or the default moved since read: read again
            return replace(updated, default=current.default or take)
        raise Conflict(f"Billing profile [{profile_id}] kept changing concurrently; retry")

    def _release_deleted_customers(self, profile_id: str) -> None:
        """Overrides of deleted customers stop pinning the profile (customer deletion does not know
        billing; this is where it matters)."""
        for customer_id in self.repo.pinning_customers(profile_id, limit=100):
            # customers are soft-deleted: an override's customer is always found by its id
            if self.customers.get(customer_id, include_deleted=True).deleted_at is None:
                continue
            old = self.repo.get_customer_billing(customer_id)
            if old.profile_id == profile_id:
                with contextlib.suppress(WriteConflict):  # changed meanwhile: the delete re-checks
                    self.repo.put_customer_billing(replace(old, profile_id=None), old)

    def delete(self, profile_id: str) -> None:
        for attempt in range(MAX_ATTEMPTS):
            profile, rev, pinned = self._load(profile_id)
            if profile.default:
                raise Conflict(
                    f"Billing profile [{profile_id}] is the default profile; make another profile the "
                    "default first",
                    conflicting_entity_id=profile_id,
                )
            if pinned > 0 and attempt == 0:
                self._release_deleted_customers(profile_id)
                continue
            if pinned > 0:
                customers = self.repo.pinning_customers(profile_id, limit=1)
                raise Conflict(
                    f"Billing profile [{profile_id}] is pinned by {pinned} customer override(s)"
                    + (f", e.g. customer [{customers[0]}]" if customers else "")
                    + "; move those customers to another profile first",
                    conflicting_entity_id=customers[0] if customers else profile_id,
                )
            now = self.clock.now()
            try:
                self.repo.delete_profile(replace(profile, deleted_at=now, updated_at=now), rev)
            except WriteConflict:
                continue  # pinned, made default or changed meanwhile: the next round says which
            return
        raise Conflict(f"Billing profile [{profile_id}] kept changing concurrently; retry")


# -- customer billing -----------------------------------------------------------------------------
class CustomerBillingService:
    def __init__(self, repo: BillingRepository, profiles: ProfileService, customers: Customers) -> None:
        self.repo = repo
        self.profiles = profiles
        self.customers = customers

    def _customer_id(self, id_or_key: str, writable: bool) -> str:
        customer = self.customers.get(id_or_key, include_deleted=True)
        if writable and customer.deleted_at is not None:
            raise Gone(f"Customer [{id_or_key}] has been deleted")
        return customer.id

    def get(self, customer_ref: str) -> CustomerBilling:
        return self.repo.get_customer_billing(self._customer_id(customer_ref, writable=False))

    def _write(
        self, customer_ref: str, change: Callable[[CustomerBilling], tuple[str | None, AppData]]
    ) -> CustomerBilling:
        """Apply `change` (old -> new profile id and app data) to the stored override, conditionally."""
        customer_id = self._customer_id(customer_ref, writable=True)
        for _ in range(MAX_ATTEMPTS):
            old = self.repo.get_customer_billing(customer_id)
            profile_id, app_data = change(old)
            new = replace(old, profile_id=profile_id, app_data=app_data, rev=old.rev + 1)
            if new.profile_id is not None and new.profile_id != old.profile_id:
                try:
                    self.profiles.get(new.profile_id)
                except NotFound:
                    raise InvalidInput.field(
                        "billing_profile.id", f"billing profile [{new.profile_id}] not found"
                    ) from None
            try:
                self.repo.put_customer_billing(new, old)
            except WriteConflict:
                continue  # the override changed, or the profile was deleted: read again
            return new
        raise Conflict(f"Billing data of customer [{customer_id}] kept changing concurrently; retry")

    def update(self, customer_ref: str, inp: CustomerBillingInput) -> CustomerBilling:
        """PUT: the override is replaced (no profile: follow the default); app data only when given."""
        return self._write(
            customer_ref, lambda old: (inp.profile_id, old.app_data if inp.app_data is None else inp.app_data)
        )

    def update_app_data(self, customer_ref: str, app_data: AppData) -> AppData:
        return self._write(customer_ref, lambda old: (old.profile_id, app_data)).app_data

    def effective_profile(self, customer_id: str) -> Profile:
        """The profile that bills this customer now: its override, else the default. NotFound when
        there is no profile at all (create one first)."""
        billing = self.repo.get_customer_billing(self._customer_id(customer_id, writable=False))
        if billing.profile_id is not None:
            return self.profiles.get(billing.profile_id)  # pinned profiles can't be deleted
        profile = self.profiles.default()
        if profile is None:
            raise NotFound("No billing profile exists yet: create one (the first becomes the default)")
        return profile

    def portal_session(self, customer_ref: str, options: PortalOptions) -> PortalSession:
        """A Stripe customer portal session, when the customer's effective profile collects payments
        with the installed Stripe app and the customer has a Stripe customer id."""
        customer_id = self._customer_id(customer_ref, writable=True)
        stripe = self.profiles.apps.stripe

        def refuse(reason: str) -> InvalidInput:
            return InvalidInput.field("customerId", reason, source="path")

        try:
            profile = self.effective_profile(customer_id)
        except NotFound:
            raise refuse("the customer has no billing profile (none exists yet)") from None
        installed = {a.id: a for a in self.profiles.apps.installed()}
        payment = installed.get(profile.apps.payment)
        if stripe is None or payment is None or payment.type is not AppType.STRIPE:
            raise refuse(
                f"the customer's billing profile [{profile.id}] does not collect payments with Stripe"
            )
        stripe_data = self.repo.get_customer_billing(customer_id).app_data.stripe
        if stripe_data is None or stripe_data.customer_id is None:
            raise refuse(
                "the customer has no Stripe customer id: set app_data.stripe.customer_id "
                "(PUT /customers/{customerId}/billing/app-data)"
            )
        try:
            return stripe.portal_session(
                stripe_data.customer_id, options.return_url, options.locale, options.configuration_id
            )
        except StripeRejected as exc:
            field = {"return_url": "return_url", "locale": "locale", "configuration": "configuration_id"}.get(
                exc.param or "", ""
            )
            name = f"stripe_options.{field}" if field else "stripe_options"
            raise InvalidInput.field(name, f"Stripe refused it: {exc}") from exc
        except (StripeUnreachable, StripeUnauthorized) as exc:
            raise Unavailable(f"Stripe did not create the session ({exc}); retry") from exc
