"""Channel and rule use cases: typed requests in (`requests.py`), domain objects out, domain errors.

Channels: `webhook` (url, custom_headers, signing_secret generated when absent) or `sns` (topic_arn).
Types are immutable; PUT replaces the rest (an omitted signing_secret keeps the current one, so an
edit never silently rotates it). A channel used by a rule can't be deleted (409).
Rules: 1-5 existing channels; thresholds only (and required) on balance threshold rules; features
only on entitlement rules.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.ids import new_id
from shared.core.listing import Listed, sort_items
from shared.core.timeutil import Clock
from shared.notifications import signing
from shared.notifications.models import (
    RESERVED_HEADERS,
    Channel,
    ChannelType,
    Rule,
    RuleType,
    Threshold,
    header_problem,
)
from shared.notifications.repository import ChannelInUse, NotificationConfigRepository, WriteConflict
from shared.notifications.requests import ChannelRequest, ListQuery, RuleRequest, WebhookChannelRequest
from shared.notifications.urls import UrlRejected, check_syntax
from shared.settings import get_settings

T = TypeVar("T")

SORTS: dict[str, Callable[[Any], Any]] = {
    "name": lambda x: (x.name, x.id),
    "created_at": lambda x: (x.created_at, x.id),
    "updated_at": lambda x: (x.updated_at, x.id),
}
ENTITLEMENT_RULES = (RuleType.BALANCE_THRESHOLD, RuleType.ENTITLEMENT_RESET)


def _immutable_type(current: str, requested: str) -> None:
    if requested != current:
        raise InvalidInput.field("type", f"is immutable (this one is {current})", "invalid")


class NotificationConfigService:
    def __init__(self, repo: NotificationConfigRepository, clock: Clock | None = None) -> None:
        self.repo = repo
        self.clock = clock or Clock()

    # -- channels --------------------------------------------------------------------------------
    def _channel_from(self, req: ChannelRequest, channel_id: str, previous: Channel | None) -> Channel:
        now = self.clock.now()
        channel = Channel(
            id=channel_id,
            type=ChannelType(req.type),
            name=req.name,
            disabled=req.disabled,
            labels=req.labels,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
        if isinstance(req, WebhookChannelRequest):
            try:
                check_syntax(req.url, get_settings().allow_insecure_loopback_webhooks)
            except UrlRejected as exc:
                raise InvalidInput.field("url", str(exc), "invalid") from None
            for name, value in req.custom_headers.items():
                if name.lower().startswith(RESERVED_HEADERS):
                    raise InvalidInput.field(f"custom_headers.{name}", "is a reserved header", "invalid")
                if reason := header_problem(name, value):
                    raise InvalidInput.field(f"custom_headers.{name}", reason, "invalid")
            secret = (
                req.signing_secret or (previous.signing_secret if previous else None) or signing.new_secret()
            )
            try:
                signing.secret_key(secret)
            except ValueError as exc:
                raise InvalidInput.field("signing_secret", str(exc), "is_base64") from None
            channel.url, channel.custom_headers, channel.signing_secret = req.url, req.custom_headers, secret
        else:
            channel.topic_arn = req.topic_arn
        return channel

    def create_channel(self, req: ChannelRequest) -> Channel:
        channel = self._channel_from(req, new_id(), None)
        self.repo.put_channel(channel, create=True)
        return channel

    def get_channel(self, channel_id: str) -> Channel:
        channel = self.repo.get_channel(channel_id)
        if channel is None:
            raise NotFound(f"Notification channel [{channel_id}] not found")
        return channel

    def update_channel(self, channel_id: str, req: ChannelRequest) -> Channel:
        current = self.get_channel(channel_id)
        _immutable_type(current.type.value, req.type)
        channel = self._channel_from(req, channel_id, current)
        if not self.repo.put_channel(channel, create=False):
            raise NotFound(f"Notification channel [{channel_id}] not found")
        return channel

    def delete_channel(self, channel_id: str) -> None:
        try:
            deleted = self.repo.delete_channel(channel_id)
        except ChannelInUse as exc:
            raise Conflict(
                f"Notification channel [{channel_id}] is used by rules [{', '.join(exc.rule_ids)}]",
                conflicting_entity_ids=exc.rule_ids,
            ) from None
        if not deleted:
            raise NotFound(f"Notification channel [{channel_id}] not found")

    def list_channels(self, query: ListQuery) -> Listed[Channel]:
        return self._list(self.repo.list_channels(), query)

    # -- rules -----------------------------------------------------------------------------------
    def _rule_from(self, req: RuleRequest, rule_id: str, previous: Rule | None) -> Rule:
        if len(set(req.channels)) != len(req.channels):
            raise InvalidInput.field("channels", "must not repeat a channel", "invalid")
        for i, cid in enumerate(req.channels):
            if self.repo.get_channel(cid) is None:
                raise InvalidInput.field(f"channels[{i}]", f"channel [{cid}] not found", "missing_reference")
        if req.type is RuleType.BALANCE_THRESHOLD:
            if not req.thresholds:
                raise InvalidInput.field("thresholds", "is required for this rule type", "required")
            keys = [(t.type, t.value) for t in req.thresholds]
            if len(set(keys)) != len(keys):
                raise InvalidInput.field("thresholds", "must not repeat a threshold", "invalid")
        elif req.thresholds is not None:
            raise InvalidInput.field(
                "thresholds", f"is not allowed for {req.type.value} rules", "unknown_property"
            )
        if req.features is not None and req.type not in ENTITLEMENT_RULES:
            raise InvalidInput.field(
                "features", f"is not allowed for {req.type.value} rules", "unknown_property"
            )
        now = self.clock.now()
        return Rule(
            id=rule_id,
            type=req.type,
            name=req.name,
            disabled=req.disabled,
            channel_ids=list(req.channels),
            thresholds=[Threshold(Decimal(t.value), t.type) for t in req.thresholds or []],
            features=req.features or None,
            labels=req.labels,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )

    def _write(self, rule: Rule, previous: Rule | None) -> None:
        try:
            self.repo.write_rule(rule, previous)
        except WriteConflict as exc:
            old = set(previous.channel_ids) if previous else set()
            added = [c for c in dict.fromkeys(rule.channel_ids) if c not in old]
            for reason, cid in zip(exc.reasons[1:], added, strict=False):
                if reason == "ConditionalCheckFailed":
                    idx = rule.channel_ids.index(cid)
                    raise InvalidInput.field(
                        f"channels[{idx}]", f"channel [{cid}] not found", "missing_reference"
                    ) from None
            raise Conflict(f"Notification rule [{rule.id}] was modified concurrently; retry") from None

    def create_rule(self, req: RuleRequest) -> Rule:
        rule = self._rule_from(req, new_id(), None)
        self._write(rule, None)
        return rule

    def get_rule(self, rule_id: str) -> Rule:
        rule = self.repo.get_rule(rule_id)
        if rule is None:
            raise NotFound(f"Notification rule [{rule_id}] not found")
        return rule

    def update_rule(self, rule_id: str, req: RuleRequest) -> Rule:
        current = self.get_rule(rule_id)
        _immutable_type(current.type.value, req.type.value)
        rule = self._rule_from(req, rule_id, current)
        self._write(rule, current)
        return rule

    def delete_rule(self, rule_id: str) -> None:
        rule = self.get_rule(rule_id)
        if not self.repo.delete_rule(rule):
            raise NotFound(f"Notification rule [{rule_id}] not found")

    def list_rules(self, query: ListQuery) -> Listed[Rule]:
        return self._list(self.repo.list_rules(), query)

    def channels_of(self, rules: list[Rule]) -> dict[str, Channel]:
        """The channels the rules use, by id (to show their summaries): one listing for many rules,
        single reads for one."""
        wanted = {c for r in rules for c in r.channel_ids}
        if len(rules) > 1:
            return {c.id: c for c in self.repo.list_channels() if c.id in wanted}
        return {c: ch for c in wanted if (ch := self.repo.get_channel(c)) is not None}

    @staticmethod
    def _list(items: list[T], query: ListQuery) -> Listed[T]:
        items = [i for i in items if all(f.matches(str(getattr(i, f.field))) for f in query.filters)]
        return Listed.of(query.page, sort_items(items, query.sort, SORTS, "created_at"))
