"""The notify function re-lists rules and channels only when a write bumped the config version."""

from __future__ import annotations

from typing import Any

import pytest

from shared.notifications.repository import NotificationConfigRepository
from shared.settings import get_settings
from tests.support.harness import Stack


def test_rules_are_listed_again_only_after_a_write(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = NotificationConfigRepository(get_settings().config_table)
    lists: list[str] = []
    real = repo._list

    def counting(kind: str) -> list[dict[str, Any]]:
        lists.append(kind)
        return real(kind)

    monkeypatch.setattr(repo, "_list", counting)
    channel = stack.request(
        "POST", "/notification/channels", {"type": "webhook", "name": "a", "url": "https://example.com/hook"}
    )
    assert channel.status == 201, channel
    rules, channels = repo.active_config()
    assert (rules, [c.id for c in channels]) == ([], [channel.json()["id"]])
    assert len(lists) == 2
    repo.active_config()
    assert len(lists) == 2  # unchanged version: served from the cache
    rule = stack.request(
        "POST",
        "/notification/rules",
        {"type": "entitlements.reset", "name": "resets", "channels": [channel.json()["id"]]},
    )
    assert rule.status == 201, rule
    rules, _ = repo.active_config()
    assert [r.id for r in rules] == [rule.json()["id"]] and len(lists) == 4
    assert stack.request("DELETE", f"/notification/rules/{rule.json()['id']}").status == 204
    assert repo.active_config()[0] == []
