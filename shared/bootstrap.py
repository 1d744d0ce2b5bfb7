"""The composition root: builds every service once per process (per Lambda container), and is the
only module that knows which implementation backs which port (DynamoDB repositories, the SNS
publisher, the clock).

Routes and handlers ask this module for a service and never construct one. Each factory is one
`lru_cache`d function, so tests reset a single one with `.cache_clear()` (or everything with
`reset()`) after they point the AWS clients elsewhere. A domain joins by adding its factory here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # domain modules load inside the factories that need them (cold starts)
    from shared.auth.store import TokenStore
    from shared.billing.service import AppService, CustomerBillingService, ProfileService
    from shared.billing.stripe_account import StripeAccounts
    from shared.catalog.service import AddonService, PlanService, TaxCodeService
    from shared.charges.billables import ChargeBillables
    from shared.charges.service import ChargeService
    from shared.core.timeutil import Clock, CustomerClock
    from shared.credits.service import CreditService
    from shared.customers.attribution import Attribution
    from shared.customers.deletion import CustomerDeletion
    from shared.customers.service import CustomerService
    from shared.entitlements.access import AccessStore
    from shared.entitlements.realtime import AccessRefresher
    from shared.entitlements.repository import EntitlementRepository
    from shared.entitlements.service import EntitlementService
    from shared.entitlements.usage import EntitlementUsage
    from shared.events.listing import EventLister
    from shared.features.service import FeatureService
    from shared.ingest.service import IngestService
    from shared.invoices.adapters import BillingPort
    from shared.invoices.documents import DocumentStore
    from shared.invoices.ports import BillableSource, Documents
    from shared.invoices.service import InvoiceService
    from shared.invoices.stripe_invoicing import StripeInvoicing
    from shared.invoices.subscription_source import SubscriptionBillables
    from shared.llmcost.catalog import Catalog
    from shared.llmcost.service import CostService, PriceService
    from shared.meters.service import MeterService
    from shared.notifications.config_service import NotificationConfigService
    from shared.notifications.event_service import NotificationEventService
    from shared.notifications.repository import NotificationConfigRepository
    from shared.notifications.sender import Sender
    from shared.notifications.store import NotificationStore
    from shared.rating.models import EndProrationMode
    from shared.subscriptions.service import SubscriptionService
    from shared.testclocks.resolver import ClockResolver
    from shared.testclocks.service import ClockAdvancer, TestClockService
    from shared.usage.aggregator import Aggregator
    from shared.usage.query import UsageQueryService
from shared.aws import clients
from shared.settings import get_settings


# -- entitlements (aggregate, rate: access states; api, rate: the service) ----------------------
@dataclass(frozen=True)
class Entitlements:
    """The access-state side: what the aggregate function's hook and the rate sweep use. It loads no
    request models (no pydantic): the aggregate function's cold start stays small. The API's
    `EntitlementService` is built on top of it by `entitlement_service()`."""

    repo: EntitlementRepository
    attribution: Attribution
    refresher: AccessRefresher
    usage: EntitlementUsage
    store: AccessStore
    clock: Clock | None
    customer_clock: CustomerClock

    def after_batch(self, touched: dict[str, dict[str, datetime]]) -> int:
        """The aggregate function's hook: refresh the entitlements a batch's usage touched."""
        subjects = {s for by_subject in touched.values() for s in by_subject}
        customers = {s: ref.id for s, ref in self.attribution.resolve_subjects(subjects).items()}
        return self.refresher.refresh_for_usage(touched, customers)

    def sweep(self, reconcile: bool = False) -> int:
        """The scheduled job: every metered entitlement whose usage period ended gets its reset;
        with `reconcile`, every metered entitlement is checked (not only the due index)."""
        return self.refresher.sweep(self.repo.all_metered() if reconcile else None)


def build_entitlements(clock: Clock | None = None) -> Entitlements:
    """A fresh object graph (tests build one on a fixed clock: every customer on it);
    `entitlements()` is the shared one, where each customer reads its test clock's time."""
    from shared.aws.publisher import DomainPublisher
    from shared.core.timeutil import WallClock
    from shared.customers.attribution import Attribution
    from shared.entitlements.access import AccessStore
    from shared.entitlements.realtime import AccessRefresher
    from shared.entitlements.repository import EntitlementRepository
    from shared.entitlements.usage import EntitlementUsage
    from shared.features.repository import FeatureRepository
    from shared.meters.repository import MeterRepository
    from shared.usage.query import UsageQueryService

    s = get_settings()
    customer_clock: CustomerClock = WallClock(clock) if clock is not None else clock_resolver()
    ddb = clients.dynamodb()
    attribution = Attribution(ddb, s.config_table)
    usage = EntitlementUsage(
        UsageQueryService(ddb, s.usage_table, attribution=attribution, consistent=True),
        attribution,
        MeterRepository(s.config_table, ddb),
        FeatureRepository(s.config_table, ddb),
    )
    repo = EntitlementRepository(s.config_table, ddb)
    store = AccessStore(ddb, s.config_table)
    publisher = DomainPublisher(s.domain_topic_arn) if s.domain_topic_arn else None
    refresher = AccessRefresher(repo, usage, store, publisher, clock=clock, customer_clock=customer_clock)
    return Entitlements(repo, attribution, refresher, usage, store, clock, customer_clock)


def build_entitlement_service(ents: Entitlements) -> EntitlementService:
    """The API's service (request models, customers, features) over an access-state graph."""
    from shared.customers.repository import CustomerRepository
    from shared.customers.service import CustomerService
    from shared.entitlements.service import EntitlementService
    from shared.features.repository import FeatureRepository
    from shared.features.service import FeatureService
    from shared.meters.repository import MeterRepository

    s = get_settings()
    ddb = clients.dynamodb()
    return EntitlementService(
        ents.repo,
        CustomerService(CustomerRepository(s.config_table, ddb)),
        FeatureService(FeatureRepository(s.config_table, ddb), MeterRepository(s.config_table, ddb)),
        ents.usage,
        ents.store,
        ents.refresher,
        clock=ents.clock,
        customer_clock=ents.customer_clock,
    )


@lru_cache(maxsize=1)
def entitlements() -> Entitlements:
    return build_entitlements()


@lru_cache(maxsize=1)
def entitlement_service() -> EntitlementService:
    return build_entitlement_service(entitlements())


# -- customers ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def customers() -> CustomerService:
    from shared.customers.repository import CustomerRepository
    from shared.customers.service import CustomerService
    from shared.testclocks.repository import TestClockRepository

    table = get_settings().config_table
    return CustomerService(CustomerRepository(table), clocks=TestClockRepository(table))


# -- test clocks (api, rate; the resolver wherever a customer's "now" is read) --------------------
@lru_cache(maxsize=1)
def clock_resolver() -> ClockResolver:
    from shared.customers.repository import CustomerRepository
    from shared.testclocks.repository import TestClockRepository
    from shared.testclocks.resolver import ClockResolver

    table = get_settings().config_table
    return ClockResolver(TestClockRepository(table), CustomerRepository(table))


@lru_cache(maxsize=1)
def test_clocks() -> TestClockService:
    from shared.aws.publisher import DomainPublisher
    from shared.testclocks.repository import TestClockRepository
    from shared.testclocks.service import TestClockService
    from shared.testclocks.trigger import PublishedTrigger

    s = get_settings()
    trigger = PublishedTrigger(DomainPublisher(s.domain_topic_arn)) if s.domain_topic_arn else None
    return TestClockService(TestClockRepository(s.config_table), trigger)


@lru_cache(maxsize=1)
def clock_advancer() -> ClockAdvancer:
    """What an advance runs, in this order at each step (shared/testclocks/due.py): subscription
    phase changes (a phase's entitlements exist before its resets run), entitlement resets, invoices
    (they see the period's final usage)."""
    from shared.entitlements.due import EntitlementResets
    from shared.testclocks.repository import TestClockRepository
    from shared.testclocks.service import ClockAdvancer

    return ClockAdvancer(
        TestClockRepository(get_settings().config_table),
        clock_resolver(),
        [subscriptions(), EntitlementResets(entitlements().refresher), invoices()],
    )


def new_invocation() -> None:
    """Per-invocation caches (the test clocks' times): the api, aggregate and rate handlers call
    this first, so a warm container never serves a clock's time from an earlier invocation."""
    clock_resolver().new_invocation()


def customer_deletion() -> CustomerDeletion:
    # Not cached: it holds the cached services, so it follows when either is rebuilt.
    from shared.customers.deletion import CustomerDeletion

    return CustomerDeletion(customers(), entitlement_service())


# -- notifications (api, notify) ----------------------------------------------------------------
@lru_cache(maxsize=1)
def notification_config() -> NotificationConfigService:
    from shared.notifications.config_service import NotificationConfigService
    from shared.notifications.repository import NotificationConfigRepository

    return NotificationConfigService(NotificationConfigRepository(get_settings().config_table))


@lru_cache(maxsize=1)
def notification_events() -> NotificationEventService:
    from shared.notifications.event_service import NotificationEventService
    from shared.notifications.repository import NotificationConfigRepository
    from shared.notifications.store import NotificationStore

    s = get_settings()
    return NotificationEventService(
        NotificationStore(s.notifications_table), NotificationConfigRepository(s.config_table)
    )


@lru_cache(maxsize=1)
def notify_components() -> tuple[NotificationConfigRepository, NotificationStore, Sender]:
    """The notify function's long-lived parts; its engine and dispatcher are per invocation."""
    from shared.notifications.repository import NotificationConfigRepository
    from shared.notifications.sender import Sender
    from shared.notifications.store import NotificationStore

    s = get_settings()
    return (
        NotificationConfigRepository(s.config_table),
        NotificationStore(s.notifications_table),
        Sender(allow_insecure_loopback=s.allow_insecure_loopback_webhooks),
    )


# -- ingest and aggregate -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def ingest_service() -> IngestService:
    from shared.ingest.publisher import KinesisPublisher
    from shared.ingest.service import IngestService

    s = get_settings()
    return IngestService(KinesisPublisher(s.events_stream), s.max_events_per_request, s.max_request_bytes)


def _refresh_entitlements(touched: dict[str, dict[str, datetime]]) -> None:
    entitlements().after_batch(touched)


@lru_cache(maxsize=1)
def aggregator() -> Aggregator:
    from shared.events.archive import Archive
    from shared.meters.repository import MeterRepository
    from shared.usage.aggregator import Aggregator

    s = get_settings()
    client = clients.dynamodb()
    return Aggregator(
        client,
        s.events_table,
        s.usage_table,
        MeterRepository(s.config_table, client),
        Archive(clients.s3(), s.events_archive_bucket),
        # Entitlements on the meters and customers a batch touched get their access state refreshed
        # before the batch is acknowledged: a failure retries the (idempotent) batch.
        after_batch=_refresh_entitlements,
        flush_seconds=s.usage_flush_seconds,
    )


# -- meters, usage, features, tokens (api) ------------------------------------------------------
@lru_cache(maxsize=1)
def meters() -> MeterService:
    from shared.features.repository import FeatureRepository
    from shared.meters.repository import MeterRepository
    from shared.meters.service import MeterService

    table = get_settings().config_table
    return MeterService(MeterRepository(table), FeatureRepository(table))


@lru_cache(maxsize=1)
def usage() -> UsageQueryService:
    from shared.customers.attribution import Attribution
    from shared.usage.query import UsageQueryService

    s = get_settings()
    ddb = clients.dynamodb()
    return UsageQueryService(ddb, s.usage_table, attribution=Attribution(ddb, s.config_table))


@lru_cache(maxsize=1)
def features() -> FeatureService:
    from shared.features.repository import FeatureRepository
    from shared.features.service import FeatureService
    from shared.meters.repository import MeterRepository

    table = get_settings().config_table
    return FeatureService(FeatureRepository(table), MeterRepository(table))


@lru_cache(maxsize=1)
def event_lister() -> EventLister:
    from shared.customers.attribution import Attribution
    from shared.events.listing import EventLister

    s = get_settings()
    client = clients.dynamodb()
    return EventLister(
        client, s.events_table, Attribution(client, s.config_table), retention_days=s.event_retention_days
    )


@lru_cache(maxsize=1)
def tokens() -> TokenStore:
    from shared.auth.store import TokenStore

    return TokenStore(get_settings().config_table)


# -- product catalog (api) ----------------------------------------------------------------------
@lru_cache(maxsize=1)
def tax_codes() -> TaxCodeService:
    from shared.catalog.repository import TaxCodeRepository
    from shared.catalog.service import TaxCodeService

    return TaxCodeService(TaxCodeRepository(get_settings().config_table))


@lru_cache(maxsize=1)
def plans() -> PlanService:
    from shared.catalog.repository import AddonRepository, PlanRepository
    from shared.catalog.service import PlanService
    from shared.features.repository import FeatureRepository

    table = get_settings().config_table
    return PlanService(PlanRepository(table), AddonRepository(table), FeatureRepository(table), tax_codes())


@lru_cache(maxsize=1)
def addons() -> AddonService:
    from shared.catalog.repository import AddonRepository
    from shared.catalog.service import AddonService
    from shared.features.repository import FeatureRepository

    table = get_settings().config_table
    return AddonService(AddonRepository(table), FeatureRepository(table), tax_codes())


# -- subscriptions (api, rate) -------------------------------------------------------------------
@lru_cache(maxsize=1)
def subscriptions() -> SubscriptionService:
    from shared.catalog.repository import AddonRepository, PlanRepository
    from shared.subscriptions.repository import SubscriptionRepository
    from shared.subscriptions.service import SubscriptionService

    table = get_settings().config_table
    return SubscriptionService(
        SubscriptionRepository(table),
        PlanRepository(table),
        customers(),
        entitlement_service(),
        now_for=clock_resolver().now_for,  # a customer on a test clock lives on its time
        addons=AddonRepository(table),
    )


# -- prepaid credits (api; invoice: `credits().apply`) ------------------------------------------
def build_credits(clock: Clock | None = None) -> CreditService:
    """A fresh service (tests build one on a fixed clock); `credits()` is the shared one."""
    from shared.credits.repository import CreditRepository
    from shared.credits.service import CreditService

    def customer_exists(customer_id: str) -> bool:
        found = customers().find(customer_id)
        return found is not None and found.id == customer_id and found.deleted_at is None

    def tax_code_exists(tax_code_id: str) -> bool:
        return tax_code_id in tax_codes().live_ids({tax_code_id})

    return CreditService(
        CreditRepository(get_settings().config_table), customer_exists, tax_code_exists, clock
    )


@lru_cache(maxsize=1)
def credits() -> CreditService:
    return build_credits()


# -- charges (api; invoicing reads `charge_billables()`) ------------------------------------------
def build_charges(clock: Clock | None = None) -> ChargeService:
    """A fresh service (tests build one on a fixed clock); `charges()` is the shared one."""
    from shared.charges.repository import ChargeRepository
    from shared.charges.service import ChargeService
    from shared.charges.usage import MeteredUsage
    from shared.customers.attribution import Attribution
    from shared.features.repository import FeatureRepository
    from shared.meters.repository import MeterRepository
    from shared.usage.query import UsageQueryService

    s = get_settings()
    ddb = clients.dynamodb()
    attribution = Attribution(ddb, s.config_table)
    usage = MeteredUsage(
        UsageQueryService(ddb, s.usage_table, attribution=attribution, consistent=True),
        attribution,
        FeatureRepository(s.config_table, ddb),
        MeterRepository(s.config_table, ddb),
    )

    def customer_exists(customer_id: str) -> bool:
        found = customers().find(customer_id)
        return found is not None and found.id == customer_id and found.deleted_at is None

    def tax_code_exists(tax_code_id: str) -> bool:
        return tax_code_id in tax_codes().live_ids({tax_code_id})

    return ChargeService(
        ChargeRepository(s.config_table, ddb),
        customer_exists,
        tax_code_exists,
        usage,
        clock,
        # A customer on a test clock lives on its time; a fixed test clock is every customer's.
        now_for=clock_resolver().now_for if clock is None else None,
    )


@lru_cache(maxsize=1)
def charges() -> ChargeService:
    return build_charges()


def charge_billables() -> ChargeBillables:
    # Not cached: it holds the cached service, so it follows when that is rebuilt.
    from shared.charges.billables import ChargeBillables

    service = charges()
    return ChargeBillables(service.repo, service)


# -- billing settings (api; the invoice code reads `customer_billing().effective_profile`) ---------
def _stripe_key() -> str:
    """The configured Stripe secret key ("" when none is)."""
    from shared.billing.stripe_account import read_secret_parameter

    s = get_settings()
    key = s.stripe_api_key
    if not key and s.stripe_api_key_parameter:
        key = read_secret_parameter(clients.ssm(), s.stripe_api_key_parameter)
    return key


def _stripe_accounts() -> StripeAccounts | None:
    from shared.billing.stripe_account import StripeAccounts

    key = _stripe_key()
    return StripeAccounts(key, get_settings().stripe_api_base or None) if key else None


@lru_cache(maxsize=1)
def stripe_webhook_secret() -> str:
    """Stripe's webhook signing secret ("" when none is configured: every delivery is refused)."""
    from shared.billing.stripe_account import read_secret_parameter

    s = get_settings()
    secret = s.stripe_webhook_secret
    if not secret and s.stripe_webhook_secret_parameter:
        secret = read_secret_parameter(clients.ssm(), s.stripe_webhook_secret_parameter)
    return secret


@lru_cache(maxsize=1)
def apps() -> AppService:
    from shared.billing.repository import BillingRepository
    from shared.billing.service import AppService

    return AppService(BillingRepository(get_settings().config_table), _stripe_accounts())


@lru_cache(maxsize=1)
def billing_profiles() -> ProfileService:
    from shared.billing.repository import BillingRepository
    from shared.billing.service import ProfileService

    return ProfileService(BillingRepository(get_settings().config_table), apps(), customers())


@lru_cache(maxsize=1)
def customer_billing() -> CustomerBillingService:
    from shared.billing.repository import BillingRepository
    from shared.billing.service import CustomerBillingService

    return CustomerBillingService(
        BillingRepository(get_settings().config_table), billing_profiles(), customers()
    )


# -- invoicing's sources (invoice) -------------------------------------------------------------------
def _end_proration_mode(customer_id: str) -> EndProrationMode:
    """The customer's effective profile's `proration_mode`; the workflow default while there is no
    profile yet (nothing can be invoiced then, but a preview still needs a mode)."""
    from shared.billing.models import Workflow
    from shared.core.errors import NotFound
    from shared.rating.models import EndProrationMode

    try:
        mode = invoice_billing().effective_profile(customer_id).workflow.proration_mode
    except NotFound:
        mode = Workflow().proration_mode
    return EndProrationMode(mode.value)


@lru_cache(maxsize=1)
def subscription_billables() -> SubscriptionBillables:
    from shared.catalog.repository import AddonRepository, PlanRepository
    from shared.features.repository import FeatureRepository
    from shared.invoices.subscription_source import SubscriptionBillables
    from shared.subscriptions.repository import SubscriptionRepository

    table = get_settings().config_table
    return SubscriptionBillables(
        SubscriptionRepository(table),
        PlanRepository(table),
        AddonRepository(table),
        FeatureRepository(table),
        end_mode_for=_end_proration_mode,
    )


# -- invoice documents (invoice: `put` at issue; api: `links` when rendering an invoice) ----------
@lru_cache(maxsize=1)
def document_store() -> DocumentStore:
    from shared.invoices.documents import DocumentStore

    return DocumentStore(clients.s3(), get_settings().documents_bucket)


# -- invoices (api, invoice; rate: a test clock's third due-work provider) ------------------------
@lru_cache(maxsize=1)
def invoicing_app() -> StripeInvoicing | None:
    """Stripe invoicing, when a Stripe secret key is configured (None otherwise: an invoice whose
    profile uses Stripe is then held as invalid, naming the missing key)."""
    from shared.billing.models import StripeCustomerData
    from shared.billing.repository import BillingRepository
    from shared.invoices.stripe_invoicing import StripeInvoicing

    key = _stripe_key()
    if not key:
        return None
    billing = BillingRepository(get_settings().config_table)

    def customer_of(customer_id: str) -> str | None:
        return (billing.get_customer_billing(customer_id).app_data.stripe or StripeCustomerData()).customer_id

    return StripeInvoicing(key, customer_of, get_settings().stripe_api_base or None)


@lru_cache(maxsize=1)
def invoice_sources() -> list[BillableSource]:
    """Where billables come from: subscriptions and charges (tests pass their own list to
    `build_invoices`)."""
    return [subscription_billables(), charge_billables()]


@lru_cache(maxsize=1)
def invoice_documents() -> Documents | None:
    """The invoice documents (PDF and JSON in S3): written at issue, linked when an invoice is read."""
    from shared.invoices.adapters import DocumentsPort

    return DocumentsPort(document_store())


@lru_cache(maxsize=1)
def invoice_billing() -> BillingPort:
    """The customers' effective billing profiles as invoicing reads them (memoised per invocation)."""
    from shared.invoices.adapters import BillingPort

    return BillingPort(customer_billing(), apps())


def build_invoices(
    now_for: Callable[[str], datetime] | None = None,
    sources: list[BillableSource] | None = None,
    step: Callable[[str], None] | None = None,
) -> InvoiceService:
    """A fresh service (tests build one on their own clock, sources and fault-injection step);
    `invoices()` is the shared one."""
    from shared.aws.publisher import DomainPublisher
    from shared.credits.repository import CreditRepository
    from shared.customers.attribution import Attribution
    from shared.features.repository import FeatureRepository
    from shared.invoices import views
    from shared.invoices.adapters import CreditsPort, CustomersPort
    from shared.invoices.repository import InvoiceRepository
    from shared.invoices.service import InvoiceService
    from shared.invoices.usage import MeteredUsage
    from shared.meters.repository import MeterRepository
    from shared.usage.query import UsageQueryService

    s = get_settings()
    ddb = clients.dynamodb()
    attribution = Attribution(ddb, s.config_table)
    usage = MeteredUsage(
        UsageQueryService(ddb, s.usage_table, attribution=attribution, consistent=True),
        attribution,
        MeterRepository(s.config_table, ddb),
        FeatureRepository(s.config_table, ddb),
    )
    return InvoiceService(
        InvoiceRepository(s.config_table),
        invoice_sources() if sources is None else sources,
        usage,
        CreditsPort(credits(), CreditRepository(s.config_table)),
        invoice_billing(),
        CustomersPort(customers()),
        now_for or clock_resolver().now_for,
        views.invoice,
        documents=invoice_documents(),
        publisher=DomainPublisher(s.domain_topic_arn) if s.domain_topic_arn else None,
        # Charges book their lines when an invoice carrying them is issued, paid or voided.
        bookings=charge_billables(),
        step=step,
        invoicing=invoicing_app(),
    )


@lru_cache(maxsize=1)
def invoices() -> InvoiceService:
    return build_invoices()


# -- LLM cost (api, rate) -----------------------------------------------------------------------
@lru_cache(maxsize=1)
def llm_catalog() -> Catalog:
    """The installed genai-prices snapshot (tests swap this function for a catalog of their own)."""
    from shared.llmcost.catalog import Catalog

    return Catalog()


def llm_prices() -> PriceService:
    # Not cached: it reads `llm_catalog` at call time, so a swapped catalog takes effect.
    from shared.llmcost.repository import PriceRepository
    from shared.llmcost.service import PriceService

    return PriceService(PriceRepository(get_settings().config_table), llm_catalog())


def llm_costs() -> CostService:
    from shared.llmcost.repository import PriceRepository
    from shared.llmcost.service import CostService

    table = get_settings().config_table
    return CostService(features(), meters(), usage(), PriceRepository(table), llm_catalog())


_CACHED = (
    entitlements,
    entitlement_service,
    customers,
    clock_resolver,
    test_clocks,
    clock_advancer,
    notification_config,
    notification_events,
    notify_components,
    ingest_service,
    aggregator,
    meters,
    usage,
    features,
    event_lister,
    tokens,
    tax_codes,
    plans,
    addons,
    subscriptions,
    credits,
    charges,
    apps,
    billing_profiles,
    customer_billing,
    subscription_billables,
    document_store,
    invoice_sources,
    invoice_billing,
    invoice_documents,
    invoicing_app,
    stripe_webhook_secret,
    invoices,
    llm_catalog,
)


def reset() -> None:
    """Forget the settings, the AWS clients and every built service: after the environment or the
    AWS endpoints changed (tests, the bench, a local stack restarted in the same process). A
    service built earlier holds the client it was built with, so all three go together."""
    get_settings.cache_clear()
    clients.reset_clients()
    for factory in _CACHED:
        factory.cache_clear()
