"""The entitlement object graph, built once per process from the settings (API, aggregate, rate)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from shared.aws import clients
from shared.aws.publisher import DomainPublisher
from shared.core.timeutil import Clock
from shared.customers.attribution import Attribution
from shared.customers.repository import CustomerRepository
from shared.customers.service import CustomerService
from shared.entitlements.access import AccessStore
from shared.entitlements.realtime import AccessRefresher
from shared.entitlements.repository import EntitlementRepository
from shared.entitlements.service import EntitlementService
from shared.entitlements.usage import EntitlementUsage
from shared.features.repository import FeatureRepository
from shared.features.service import FeatureService
from shared.meters.repository import MeterRepository
from shared.settings import get_settings
from shared.usage.query import UsageQueryService


@dataclass(frozen=True)
class Entitlements:
    repo: EntitlementRepository
    attribution: Attribution
    refresher: AccessRefresher
    service: EntitlementService

    def after_batch(self, touched: dict[str, dict[str, datetime]]) -> int:
        """The aggregate function's hook: refresh the entitlements a batch's usage touched."""
        subjects = {s for by_subject in touched.values() for s in by_subject}
        customers = {s: ref.id for s, ref in self.attribution.resolve_subjects(subjects).items()}
        return self.refresher.refresh_for_usage(touched, customers)

    def sweep(self, reconcile: bool = False) -> int:
        """The scheduled job: every metered entitlement whose usage period ended gets its reset;
        with `reconcile`, every metered entitlement is checked (not only the due index)."""
        return self.refresher.sweep(self.repo.all_metered() if reconcile else None)


def build(clock: Clock | None = None) -> Entitlements:
    s = get_settings()
    ddb = clients.dynamodb()
    attribution = Attribution(ddb, s.config_table)
    meters = MeterRepository(s.config_table, ddb)
    features = FeatureRepository(s.config_table, ddb)
    usage = EntitlementUsage(
        UsageQueryService(ddb, s.usage_table, attribution=attribution, consistent=True),
        attribution,
        meters,
        features,
    )
    repo = EntitlementRepository(s.config_table, ddb)
    store = AccessStore(ddb, s.config_table)
    publisher = DomainPublisher(s.domain_topic_arn) if s.domain_topic_arn else None
    refresher = AccessRefresher(repo, usage, store, publisher, clock=clock)
    service = EntitlementService(
        repo,
        CustomerService(CustomerRepository(s.config_table, ddb)),
        FeatureService(features, meters),
        usage,
        store,
        refresher,
        clock=clock,
    )
    return Entitlements(repo, attribution, refresher, service)


@lru_cache(maxsize=1)
def entitlements() -> Entitlements:
    return build()
