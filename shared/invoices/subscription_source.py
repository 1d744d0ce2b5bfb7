"""Subscriptions as a source of billables: the reads around the pure `lines.billables_for`.

For one customer it reads the customer's subscriptions (the `SUBCUST#<customer>` timeline, then each
subscription), each one's plan version by id, its add-ons with their catalog versions, the keys of the
features its usage prices meter, and the customer's end-proration mode (the effective billing
profile's `proration_mode`, looked up by a callable bootstrap supplies, so invoicing depends on no
billing service here). A plan version or add-on version is immutable once subscribed, so the same
stored state always gives the same billables.

`customers_to_bill(now)` reads the `SUBSYNC` index (shared/subscriptions/repository.py): the customers
whose subscriptions changed since their last sync, or whose billables grow by `now` (a service period
starts: `lines.next_start`). `synced(customer_id, now)` moves the customer's entry to that next
instant once invoicing has stored what `billables` returned, conditional on the timeline's `rev` read
then (a subscription written meanwhile keeps it due). `every_customer(now)` is the slow list (every
subscription, one Query of the `SUB` index) for invoicing's daily full sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.catalog.models import Addon, Plan, RateCard
from shared.catalog.repository import AddonRepository, PlanRepository
from shared.core import durations
from shared.features.repository import FeatureRepository
from shared.invoices.billables import Billable
from shared.invoices.lines import billables_for, next_start
from shared.rating.models import EndProrationMode
from shared.subscriptions.models import Subscription, SubscriptionAddon
from shared.subscriptions.repository import SubscriptionRepository


class MissingCatalogItem(LookupError):
    """A subscription names a plan or add-on version the catalog does not hold: billing it would
    silently drop revenue, so the customer's billing stops with this error instead."""


def _empty(sub: Subscription) -> bool:
    return sub.active_to is not None and sub.active_to <= sub.active_from


_INCLUSIVE = timedelta(microseconds=1)  # `lines` bills service starting strictly before its horizon


class SubscriptionBillables:
    def __init__(
        self,
        subscriptions: SubscriptionRepository,
        plans: PlanRepository,
        addons: AddonRepository,
        features: FeatureRepository,
        end_mode_for: Callable[[str], EndProrationMode],
    ) -> None:
        self.subscriptions = subscriptions
        self.plans = plans
        self.addons = addons
        self.features = features
        self.end_mode_for = end_mode_for
        # A feature's key never changes (archiving keeps it): learned once per process, not per customer.
        self._keys: dict[str, str] = {}
        # customer -> (until, timeline rev, next start, stored index key) of its last `billables`.
        self._read: dict[str, tuple[datetime, int, datetime | None, str | None]] = {}

    def billables(self, customer_id: str, until: datetime) -> list[Billable]:
        """What the customer's subscriptions bill for service starting at or before `until` (the
        `BillableSource` port: the invoicing core passes the customer's now, and a period starting
        exactly then, such as an in-advance fee, belongs in the invoice collected at that instant),
        subscription by subscription in start order (see `shared.invoices.lines` for the rules)."""
        self._read.pop(customer_id, None)
        _, subs, rev, stored = self.subscriptions.for_billing(customer_id)
        subs = [s for s in subs if not _empty(s)]
        if not subs:
            self._read[customer_id] = (until, rev, None, stored)
            return []
        end_mode = self.end_mode_for(customer_id)
        out: list[Billable] = []
        starts: list[datetime] = []
        for sub in subs:
            plan = self._plan(sub)
            addons = [(a, self._addon(sub, a)) for a in self.subscriptions.addons(sub.id)]
            cards = [rc for phase in plan.phases for rc in phase.rate_cards]
            cards += [rc for _, addon in addons for rc in addon.rate_cards]
            out += billables_for(
                sub,
                plan,
                addons,
                until=until + _INCLUSIVE,
                end_mode=end_mode,
                feature_keys=self._feature_keys(cards),
            )
            start = next_start(sub, plan, addons, after=until)
            if start is not None:
                starts.append(start)
        self._read[customer_id] = (until, rev, min(starts, default=None), stored)
        return out

    def customers_to_bill(self, now: datetime) -> list[str]:
        """Customers whose sync is due by `now` (the `SUBSYNC` index), most overdue first."""
        return list(dict.fromkeys(self.subscriptions.sync_due(now)))

    def synced(self, customer_id: str, now: datetime) -> None:
        """Invoicing stored what `billables(customer_id, now)` returned: the customer is due again when
        its billables next grow (out of the index when they never will), unless its subscriptions
        were written since they were read."""
        read = self._read.pop(customer_id, None)
        if read is None or read[0] != now or read[1] == 0:
            return  # not read by this process for `now`, or no subscription ever (no timeline)
        _, rev, next_at, stored = read
        self.subscriptions.mark_synced(customer_id, rev, next_at, stored)

    def every_customer(self, now: datetime) -> list[str]:
        """Customers with a subscription running at or after `now`, or one that ended less than one
        billing cadence before it (its last in-arrears lines are invoiced at its end: a run shortly
        after still gathers them). Sorted, each once: the full sweep's list and its cursor's order."""
        out = {
            s.customer_id
            for s in self.subscriptions.list_all()
            if not _empty(s)
            and (s.active_to is None or durations.step(s.active_to, s.billing_cadence, 1) > now)
        }
        return sorted(out)

    # -- lookups ---------------------------------------------------------------------------------
    def _plan(self, sub: Subscription) -> Plan:
        found = self.plans.get(sub.plan_id)
        if found is None:
            raise MissingCatalogItem(f"subscription [{sub.id}]: plan version [{sub.plan_id}] not found")
        return found[0]

    def _addon(self, sub: Subscription, sub_addon: SubscriptionAddon) -> Addon:
        found = self.addons.get(sub_addon.addon_id)
        if found is None:
            raise MissingCatalogItem(f"subscription [{sub.id}]: add-on [{sub_addon.addon_id}] not found")
        return found[0]

    def _feature_keys(self, cards: list[RateCard]) -> dict[str, str]:
        """Feature id -> key for the cards' features (archived ones too: a line keeps its feature)."""
        out: dict[str, str] = {}
        for feature_id in sorted({rc.feature_id for rc in cards if rc.feature_id is not None}):
            key = self._keys.get(feature_id)
            if key is None:
                feature = self.features.get(feature_id)
                if feature is None:
                    continue
                key = self._keys[feature_id] = feature.key
            out[feature_id] = key
        return out
