"""Entitlements over /v3/openmeter/customers/{customer}/entitlements: create, uniqueness, lookup,
real-time access from ingested usage, grants, resets, value, history, roles and domain events.

There is no clock in the API path, so period boundaries are set up in the past: a `PT1H` usage
period anchored 3h30m before the test's minute `M`, i.e. the current period is `[M-30m, M+30m)`
whatever minute the test runs in, and the previous one `[M-90m, M-30m)`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import VIEWER, Stack
from tests.support.problems import problem

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")

UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_TEST_MINUTE: list[datetime] = []


@pytest.fixture(autouse=True)
def _test_minute() -> None:
    """Fix the test's minute M once, so the anchor and period computed here never straddle a minute
    tick mid-test (the API reads the real clock; its period follows the anchor it was given)."""
    _TEST_MINUTE[:] = [minute()]


def anchor() -> datetime:
    return _TEST_MINUTE[0] - timedelta(hours=3, minutes=30)


def period_start() -> datetime:
    return _TEST_MINUTE[0] - timedelta(minutes=30)


# -- setup helpers ---------------------------------------------------------------------------------
def create_meter(stack: Stack, key: str = "tokens", aggregation: str = "sum") -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": key,
        "aggregation": aggregation,
        "event_type": "prompt",
        "dimensions": {"model": "$.model"},
    }
    if aggregation != "count":
        body["value_property"] = "$.tokens"
    resp = stack.request("POST", "/meters", body)
    assert resp.status == 201, resp
    return resp.json()


def create_feature(
    stack: Stack, key: str = "gpt", meter_id: str | None = None, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "name": key.title()}
    if meter_id is not None:
        body["meter"] = {"id": meter_id, **({"filters": filters} if filters else {})}
    resp = stack.request("POST", "/features", body)
    assert resp.status == 201, resp
    return resp.json()


def create_customer(stack: Stack, key: str = "acme") -> dict[str, Any]:
    body = {"key": key, "name": key.title(), "usage_attribution": {"subject_keys": [f"{key}-a", f"{key}-b"]}}
    resp = stack.request("POST", "/customers", body)
    assert resp.status == 201, resp
    return resp.json()


@pytest.fixture
def world(stack: Stack) -> dict[str, Any]:
    meter = create_meter(stack)
    return {
        "meter": meter,
        "feature": create_feature(stack, "gpt", meter["id"]),
        "flag": create_feature(stack, "sso"),
        "customer": create_customer(stack),
    }


def ent_path(customer: str = "acme", rest: str = "") -> str:
    return f"/customers/{customer}/entitlements{rest}"


def metered_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "metered",
        "feature_key": "gpt",
        "usage_period": {"interval": "PT1H", "anchor": iso(anchor())},
        "measure_usage_from": iso(anchor()),
        "issue": {"amount": 100},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create_ent(stack: Stack, customer: str = "acme", **overrides: Any) -> dict[str, Any]:
    resp = stack.request("POST", ent_path(customer), metered_body(**overrides))
    assert resp.status == 201, resp
    return resp.json()


def ev(i: Any, at: datetime, tokens: Any, subject: str = "acme-a", model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "source": "test",
        "type": "prompt",
        "subject": subject,
        "time": iso(at),
        "data": {"tokens": tokens, "model": model},
    }


def push(stack: Stack, events: list[dict[str, Any]]) -> None:
    resp = stack.ingest(events)
    assert resp.status == 202, resp
    stack.drain()


def value(stack: Stack, ent: str = "gpt", customer: str = "acme", **query: str) -> dict[str, Any]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    resp = stack.request("GET", ent_path(customer, f"/{ent}/value" + (f"?{qs}" if qs else "")))
    assert resp.status == 200, resp
    return resp.json()


def access(stack: Stack, customer: str = "acme") -> dict[str, dict[str, Any]]:
    resp = stack.request("GET", f"/customers/{customer}/entitlement-access")
    assert resp.status == 200, resp
    contract.validate(resp, "list-customer-entitlement-access")
    return {row["feature_key"]: row for row in resp.json()["data"]}


def fields(resp: Any) -> list[str]:
    return [p["field"] for p in problem(resp, 400).get("invalid_parameters", [])]


def listed(stack: Stack, customer: str = "acme", query: str = "") -> list[dict[str, Any]]:
    resp = stack.request("GET", ent_path(customer) + query)
    assert resp.status == 200, resp
    return resp.json()["data"]


# -- create ----------------------------------------------------------------------------------------
def test_create_metered_returns_terms_and_current_period(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack, metadata={"team": "ml"})
    assert ent["type"] == "metered"
    assert ent["customer_id"] == world["customer"]["id"]
    assert (ent["feature_id"], ent["feature_key"]) == (world["feature"]["id"], "gpt")
    assert ent["usage_period"] == {"interval": "PT1H", "anchor": iso(anchor())}
    assert ent["measure_usage_from"] == iso(anchor())
    assert ent["current_usage_period"] == {
        "from": iso(period_start()),
        "to": iso(period_start() + timedelta(hours=1)),
    }
    assert ent["issue"] == {"amount": "100", "priority": 1}
    assert ent["is_soft_limit"] is False and ent["metadata"] == {"team": "ml"}
    again = stack.request("GET", ent_path(rest=f"/{ent['id']}"))
    assert again.status == 200 and again.json()["id"] == ent["id"]


def test_create_metered_needs_usage_period_and_a_metered_feature(stack: Stack, world: dict[str, Any]) -> None:
    assert fields(stack.request("POST", ent_path(), metered_body(usage_period=None))) == ["usage_period"]
    # The type is what doesn't fit a feature without a meter.
    resp = stack.request("POST", ent_path(), metered_body(feature_key="sso"))
    assert fields(resp) == ["type"]
    assert listed(stack) == []


@pytest.mark.parametrize("aggregation", ["max", "avg", "latest", "unique_count", "count"])
def test_create_metered_accepts_aggregations(stack: Stack, aggregation: str) -> None:
    meter = create_meter(stack, f"m_{aggregation}", aggregation)
    create_feature(stack, "gpt", meter["id"])
    create_customer(stack)
    ent = create_ent(stack)
    assert ent["type"] == "metered"


def test_create_metered_rejects_min_meter(stack: Stack) -> None:
    meter = create_meter(stack, "m_min", "min")
    create_feature(stack, "gpt", meter["id"])
    create_customer(stack)
    resp = stack.request("POST", ent_path(), metered_body())
    assert fields(resp) == ["type"]
    assert "min" in problem(resp, 400)["invalid_parameters"][0]["reason"]
    assert listed(stack) == []


def test_create_boolean_and_access(stack: Stack, world: dict[str, Any]) -> None:
    resp = stack.request("POST", ent_path(), {"type": "boolean", "feature_key": "sso"})
    assert resp.status == 201, resp
    ent = resp.json()
    assert ent["type"] == "boolean" and "usage_period" not in ent and "config" not in ent
    assert value(stack, "sso") == {"has_access": True}
    assert access(stack)["sso"] == {"type": "boolean", "feature_key": "sso", "has_access": True}


@pytest.mark.parametrize("config", [{"sso": {"idp": "okta"}}, '{"sso": {"idp": "okta"}}'])
def test_create_static_stores_config_object(stack: Stack, world: dict[str, Any], config: Any) -> None:
    resp = stack.request("POST", ent_path(), {"type": "static", "feature_key": "sso", "config": config})
    assert resp.status == 201, resp
    assert resp.json()["config"] == {"sso": {"idp": "okta"}}
    row = access(stack)["sso"]
    assert row["has_access"] is True and row["type"] == "static"
    assert isinstance(row["config"], str) and orjson.loads(row["config"]) == {"sso": {"idp": "okta"}}
    assert orjson.loads(value(stack, "sso")["config"]) == {"sso": {"idp": "okta"}}


@pytest.mark.parametrize("config", [None, "[1, 2]", "not json", [1], 5, "null"])
def test_create_static_rejects_missing_or_non_object_config(
    stack: Stack, world: dict[str, Any], config: Any
) -> None:
    body: dict[str, Any] = {"type": "static", "feature_key": "sso"}
    if config is not None:
        body["config"] = config
    assert fields(stack.request("POST", ent_path(), body)) == ["config"]
    assert listed(stack) == []


@pytest.mark.parametrize("config", [{"k": "x" * 500_000}, '{"k": "%s"}' % ("x" * 70_000)])
def test_create_static_rejects_a_config_too_large_to_store(
    stack: Stack, world: dict[str, Any], config: Any
) -> None:
    # The config is stored in the entitlement's item and each access state (400 KB each at most):
    # a larger one was a DynamoDB ValidationException, a 500.
    body: dict[str, Any] = {"type": "static", "feature_key": "sso", "config": config}
    resp = stack.request("POST", ent_path(), body)
    assert fields(resp) == ["config"]
    assert listed(stack) == []
    fits = {"type": "static", "feature_key": "sso", "config": {"k": "x" * 60_000}}
    assert stack.request("POST", ent_path(), fits).status == 201


@pytest.mark.parametrize(
    ("kind", "extra", "field"),
    [
        ("boolean", {"usage_period": {"interval": "P1D"}}, "usage_period"),
        ("boolean", {"is_soft_limit": True}, "is_soft_limit"),
        ("boolean", {"issue": {"amount": 5}}, "issue"),
        ("static", {"config": {"a": 1}, "measure_usage_from": "NOW"}, "measure_usage_from"),
        ("static", {"config": {"a": 1}, "preserve_overage_at_reset": False}, "preserve_overage_at_reset"),
        ("boolean", {"config": {"a": 1}}, "config"),
    ],
)
def test_metered_only_fields_rejected_on_boolean_and_static(
    stack: Stack, world: dict[str, Any], kind: str, extra: dict[str, Any], field: str
) -> None:
    resp = stack.request("POST", ent_path(), {"type": kind, "feature_key": "sso", **extra})
    assert fields(resp) == [field]
    assert listed(stack) == []


def test_config_rejected_on_metered(stack: Stack, world: dict[str, Any]) -> None:
    assert fields(stack.request("POST", ent_path(), metered_body(config={"a": 1}))) == ["config"]


def test_unknown_or_archived_feature_is_400_naming_the_field(stack: Stack, world: dict[str, Any]) -> None:
    assert fields(stack.request("POST", ent_path(), {"type": "boolean", "feature_key": "nope"})) == [
        "feature_key"
    ]
    assert fields(stack.request("POST", ent_path(), {"type": "boolean", "feature_id": UNKNOWN_ULID})) == [
        "feature_id"
    ]
    assert fields(stack.request("POST", ent_path(), {"type": "boolean"})) == ["feature_key"]
    assert stack.request("DELETE", f"/features/{world['flag']['id']}").status == 204
    assert fields(stack.request("POST", ent_path(), {"type": "boolean", "feature_key": "sso"})) == [
        "feature_key"
    ]
    by_id = {"type": "boolean", "feature_id": world["flag"]["id"]}
    assert fields(stack.request("POST", ent_path(), by_id)) == ["feature_id"]
    assert listed(stack) == []


def test_unknown_customer_is_404(stack: Stack, world: dict[str, Any]) -> None:
    problem(stack.request("POST", ent_path("ghost"), {"type": "boolean", "feature_key": "sso"}), 404)
    problem(stack.request("GET", ent_path("ghost")), 404)
    problem(stack.request("GET", "/customers/ghost/entitlement-access"), 404)


def test_issue_creates_default_grant(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack, issue={"amount": 40, "priority": 3})
    resp = stack.request("GET", ent_path(rest=f"/{ent['id']}/grants"))
    assert resp.status == 200, resp
    [grant] = resp.json()["data"]
    assert grant["amount"] == "40" and grant["priority"] == 3
    assert grant["min_rollover_amount"] == grant["max_rollover_amount"] == "40"
    assert grant["annotations"] == {"issue_after_reset": True}
    assert grant["effective_at"] == iso(period_start())
    assert grant["expires_at"] is None and grant["voided_at"] is None
    v = value(stack)
    assert (v["balance"], v["usage"], v["has_access"]) == ("40", "0", True)


def test_measure_usage_from_now_current_period_start_and_explicit(
    stack: Stack, world: dict[str, Any]
) -> None:
    before = minute()
    now_ent = create_ent(stack, measure_usage_from="NOW", usage_period={"interval": "PT1H"})
    mfrom = parse(now_ent["measure_usage_from"])
    assert before <= mfrom <= minute() and mfrom.second == 0
    assert now_ent["usage_period"]["anchor"] == now_ent["measure_usage_from"]
    assert stack.request("DELETE", ent_path(rest=f"/{now_ent['id']}")).status == 204

    cps = create_ent(stack, measure_usage_from="CURRENT_PERIOD_START")
    assert cps["measure_usage_from"] == iso(period_start())
    assert stack.request("DELETE", ent_path(rest=f"/{cps['id']}")).status == 204

    explicit = anchor() + timedelta(minutes=7, seconds=42, milliseconds=5)
    ent = create_ent(
        stack,
        measure_usage_from=explicit.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        usage_period={"interval": "PT1H", "anchor": iso(anchor() + timedelta(seconds=59))},
    )
    assert ent["measure_usage_from"] == iso(anchor() + timedelta(minutes=7))
    assert ent["usage_period"]["anchor"] == iso(anchor())


@pytest.mark.parametrize("interval", ["PT30M", "P1X", "PT59M", "1H", 3600, "PT1H30S"])
def test_bad_interval_is_400_naming_usage_period_interval(
    stack: Stack, world: dict[str, Any], interval: Any
) -> None:
    resp = stack.request("POST", ent_path(), metered_body(usage_period={"interval": interval}))
    assert fields(resp) == ["usage_period.interval"]
    assert listed(stack) == []


@pytest.mark.parametrize(
    ("interval", "normalised"), [("DAY", "P1D"), ("month", "P1M"), ("P1DT12H", "P1DT12H"), ("PT90M", "PT90M")]
)
def test_interval_enum_names_and_iso_forms(
    stack: Stack, world: dict[str, Any], interval: str, normalised: str
) -> None:
    ent = create_ent(stack, usage_period={"interval": interval}, measure_usage_from="NOW")
    assert ent["usage_period"]["interval"] == normalised


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "unlimited"}, "type"),
        ({"measure_usage_from": "YESTERDAY"}, "measure_usage_from"),
        ({"issue": {"amount": -1}}, "issue.amount"),
        ({"issue": {"amount": 5, "priority": 0}}, "issue.priority"),
        ({"bogus": 1}, "bogus"),
        ({"metadata": {"k": "v" * 1025}}, "metadata"),
        ({"feature_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "feature_id"),
        ({"usage_period": {"interval": "PT1H", "anchor": "noon"}}, "usage_period.anchor"),
    ],
)
def test_create_validation_names_the_field(
    stack: Stack, world: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    assert fields(stack.request("POST", ent_path(), metered_body(**overrides))) == [field]
    assert listed(stack) == []


# -- uniqueness and delete -------------------------------------------------------------------------
def test_second_active_entitlement_is_409_until_deleted(stack: Stack, world: dict[str, Any]) -> None:
    first = create_ent(stack)
    resp = stack.request("POST", ent_path(), metered_body())
    body = problem(resp, 409)
    assert body["conflicting_entity_id"] == first["id"]
    boolean = stack.request("POST", ent_path(), {"type": "boolean", "feature_key": "gpt"})
    assert problem(boolean, 409)["conflicting_entity_id"] == first["id"]
    assert [e["id"] for e in listed(stack)] == [first["id"]]

    assert stack.request("DELETE", ent_path(rest=f"/{first['id']}")).status == 204
    second = create_ent(stack)
    assert second["id"] != first["id"]
    assert [e["id"] for e in listed(stack)] == [second["id"]]
    # Another customer is never in conflict.
    create_customer(stack, "globex")
    create_ent(stack, "globex")


def test_feature_key_stays_unique_when_an_archived_features_key_is_reused(
    stack: Stack, world: dict[str, Any]
) -> None:
    old = create_ent(stack)
    # Archiving keeps the entitlement but frees the key for a new feature.
    assert stack.request("DELETE", f"/features/{world['feature']['id']}").status == 204
    create_feature(stack, "gpt", world["meter"]["id"])
    resp = stack.request("POST", ent_path(), metered_body(issue={"amount": 7}))
    assert problem(resp, 409)["conflicting_entity_id"] == old["id"]
    assert [e["id"] for e in listed(stack)] == [old["id"]]
    assert value(stack)["balance"] == "100"
    assert stored_access(stack, old["customer_id"])["entitlement_id"]["S"] == old["id"]
    # Once the old one is deleted the key is free again.
    assert stack.request("DELETE", ent_path(rest=f"/{old['id']}")).status == 204
    new = create_ent(stack, issue={"amount": 7})
    assert value(stack)["balance"] == "7" and value(stack, new["id"])["balance"] == "7"


def stored_access(stack: Stack, customer_id: str, feature_key: str = "gpt") -> dict[str, Any]:
    from shared.settings import get_settings

    key = {"pk": {"S": f"ACCESS#{customer_id}"}, "sk": {"S": f"FEAT#{feature_key}"}}
    return stack.clients["dynamodb"].get_item(TableName=get_settings().config_table, Key=key)["Item"]


def test_delete_then_get_value_and_access(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack)
    assert access(stack)["gpt"]["has_access"] is True
    resp = stack.request("DELETE", ent_path(rest="/gpt"))  # by feature key
    assert resp.status == 204 and resp.text == ""
    got = stack.request("GET", ent_path(rest=f"/{ent['id']}"))
    assert got.status == 200, got
    assert got.json()["deleted_at"] is not None and "current_usage_period" not in got.json()
    assert value(stack, ent["id"]) == {"has_access": False}
    assert value(stack, "gpt") == {"has_access": False}
    assert access(stack) == {}
    problem(stack.request("GET", ent_path(rest="/gpt")), 404)
    problem(stack.request("DELETE", ent_path(rest=f"/{ent['id']}")), 404)
    problem(stack.request("GET", ent_path(rest=f"/{ent['id']}/history?window_size=PT1H")), 404)
    problem(stack.request("POST", ent_path(rest=f"/{ent['id']}/reset")), 404)
    grant = {"amount": 1, "effective_at": iso(minute())}
    problem(stack.request("POST", ent_path(rest=f"/{ent['id']}/grants"), grant), 404)


def test_value_of_feature_without_entitlement_is_no_access(stack: Stack, world: dict[str, Any]) -> None:
    assert value(stack, "gpt") == {"has_access": False}
    problem(stack.request("GET", ent_path(rest=f"/{UNKNOWN_ULID}/value")), 404)


# -- lookup and list -------------------------------------------------------------------------------
def test_lookup_by_id_and_feature_key(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack)
    by_id = stack.request("GET", ent_path(rest=f"/{ent['id']}")).json()
    by_key = stack.request("GET", ent_path(rest="/gpt")).json()
    by_customer_id = stack.request("GET", ent_path(world["customer"]["id"], "/gpt")).json()
    assert by_id == by_key == by_customer_id
    problem(stack.request("GET", ent_path(rest="/sso")), 404)
    problem(stack.request("GET", ent_path(rest=f"/{UNKNOWN_ULID}")), 404)
    # Someone else's entitlement id is not found under this customer.
    create_customer(stack, "globex")
    problem(stack.request("GET", ent_path("globex", f"/{ent['id']}")), 404)


def test_list_filters_and_pages(stack: Stack, world: dict[str, Any]) -> None:
    create_feature(stack, "beta")
    create_feature(stack, "audit")
    metered = create_ent(stack)
    for key in ("sso", "beta"):
        assert stack.request("POST", ent_path(), {"type": "boolean", "feature_key": key}).status == 201
    assert (
        stack.request("POST", ent_path(), {"type": "static", "feature_key": "audit", "config": {}}).status
        == 201
    )
    assert [e["feature_key"] for e in listed(stack)] == ["audit", "beta", "gpt", "sso"]
    assert [e["id"] for e in listed(stack, query="?filter[feature_key]=gpt")] == [metered["id"]]
    assert [e["feature_key"] for e in listed(stack, query="?filter[type]=boolean")] == ["beta", "sso"]
    assert listed(stack, query="?filter[type]=static")[0]["config"] == {}
    assert fields(stack.request("GET", ent_path() + "?filter[type]=unlimited")) == ["filter[type]"]
    resp = stack.request("GET", ent_path() + "?page[size]=3&page[number]=2")
    assert resp.status == 200, resp
    assert [e["feature_key"] for e in resp.json()["data"]] == ["sso"]
    assert resp.json()["meta"]["page"] == {"number": 2, "size": 3, "total": 4}
    assert fields(stack.request("GET", ent_path() + "?page[size]=0")) == ["page[size]"]


# -- real time -------------------------------------------------------------------------------------
def test_usage_updates_value_and_access(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    start = period_start()
    push(
        stack,
        [
            ev(1, start + timedelta(minutes=1), 30),
            ev(2, start + timedelta(minutes=2), 25, subject="acme-b"),
            ev(3, start - timedelta(minutes=5), 1000),  # previous period
            ev(4, start + timedelta(minutes=3), 500, subject="globex-a"),  # not acme's
        ],
    )
    v = value(stack)
    assert (v["balance"], v["usage"], v["overage"], v["has_access"]) == ("45", "55", "0", True)
    assert v["total_available_grant_amount"] == "100"
    assert v["current_usage_period"] == {"from": iso(start), "to": iso(start + timedelta(hours=1))}
    assert access(stack)["gpt"] == {"type": "metered", "feature_key": "gpt", "has_access": True}

    # Before measure_usage_from: ignored. In the minute being read (seconds ago): counted.
    push(stack, [ev(5, anchor() - timedelta(minutes=1), 999), ev(6, datetime.now(UTC), 60)])
    v = value(stack)
    assert (v["balance"], v["usage"], v["overage"], v["has_access"]) == ("0", "115", "15", False)
    assert access(stack)["gpt"]["has_access"] is False


def test_exactly_exhausted_has_no_access(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 100)])
    v = value(stack)
    assert (v["balance"], v["overage"], v["has_access"]) == ("0", "0", False)
    assert access(stack)["gpt"]["has_access"] is False


def test_soft_limit_keeps_access_when_exhausted(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack, is_soft_limit=True)
    assert ent["is_soft_limit"] is True
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 130)])
    v = value(stack)
    assert (v["balance"], v["overage"], v["has_access"]) == ("0", "30", True)
    assert access(stack)["gpt"]["has_access"] is True


def test_feature_meter_filters_restrict_usage(stack: Stack, world: dict[str, Any]) -> None:
    create_feature(stack, "gpt4o", world["meter"]["id"], filters={"model": {"eq": "gpt-4o"}})
    create_ent(stack, feature_key="gpt4o")
    create_ent(stack)
    start = period_start()
    push(
        stack,
        [
            ev(1, start + timedelta(minutes=1), 10, model="gpt-4o"),
            ev(2, start + timedelta(minutes=1), 20, model="gpt-4o-mini"),
        ],
    )
    assert value(stack, "gpt4o")["usage"] == "10"
    assert value(stack, "gpt")["usage"] == "30"


def test_late_event_is_folded_in(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    start = period_start()
    push(stack, [ev(1, minute() - timedelta(minutes=1), 10)])
    assert value(stack)["usage"] == "10"
    # Arrives later, stamped in the period's first minute (before the stored snapshot's replay point).
    push(stack, [ev(2, start, 95)])
    v = value(stack)
    assert (v["usage"], v["balance"], v["overage"], v["has_access"]) == ("105", "0", "5", False)
    assert access(stack)["gpt"]["has_access"] is False


def test_retried_batch_and_duplicate_ids_do_not_double_count(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    at = period_start() + timedelta(minutes=2)
    push(stack, [ev(1, at, 30), ev(1, at, 30)])
    push(stack, [ev(1, at, 30)])  # the same event again in a later request
    assert value(stack)["usage"] == "30"
    # A Kinesis batch delivered twice (Lambda retry) applies once.
    resp = stack.ingest([ev(2, at, 5)])
    assert resp.status == 202
    batches = stack.pending_batches()
    from functions.aggregate import handler as aggregate_handler

    for batch in batches + batches:
        assert not (aggregate_handler.lambda_handler(batch, None) or {}).get("batchItemFailures")
    v = value(stack)
    assert (v["usage"], v["balance"]) == ("35", "65")


# -- grants ----------------------------------------------------------------------------------------
def grant_path(ent: str = "gpt", rest: str = "") -> str:
    return ent_path(rest=f"/{ent}/grants{rest}")


def test_grants_create_list_void_change_the_balance(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack)
    start = period_start()
    push(stack, [ev(1, start + timedelta(minutes=1), 130)])
    assert value(stack)["has_access"] is False
    resp = stack.request(
        "POST",
        grant_path(),
        {"amount": "50", "priority": 2, "effective_at": iso(start), "metadata": {"po": "42"}},
    )
    assert resp.status == 201, resp
    grant = resp.json()
    assert grant["entitlement_id"] == ent["id"]
    assert (grant["amount"], grant["priority"], grant["effective_at"]) == ("50", 2, iso(start))
    assert (grant["min_rollover_amount"], grant["max_rollover_amount"]) == ("0", "50")
    assert grant["metadata"] == {"po": "42"} and grant["annotations"] == {}
    v = value(stack)
    assert (v["balance"], v["overage"], v["has_access"]) == ("20", "0", True)
    assert v["total_available_grant_amount"] == "150"
    assert v["grant_balances"][grant["id"]] == "20"
    assert access(stack)["gpt"]["has_access"] is True

    listed_grants = stack.request("GET", grant_path()).json()["data"]
    assert [g["id"] for g in listed_grants][-1] == grant["id"] and len(listed_grants) == 2

    voided = stack.request("POST", grant_path(rest=f"/{grant['id']}/void"))
    assert voided.status == 200, voided
    assert voided.json()["voided_at"] is not None
    v = value(stack)
    assert (v["balance"], v["has_access"]) == ("0", False)
    assert grant["id"] not in v["grant_balances"] or v["grant_balances"][grant["id"]] == "0"
    assert access(stack)["gpt"]["has_access"] is False
    assert fields(stack.request("POST", grant_path(rest=f"/{grant['id']}/void"))) == ["grant_id"]
    active = stack.request("GET", grant_path() + "?include_voided=false").json()["data"]
    assert [g["annotations"] for g in active] == [{"issue_after_reset": True}]
    problem(stack.request("POST", grant_path(rest=f"/{UNKNOWN_ULID}/void")), 404)
    assert fields(stack.request("GET", grant_path() + "?include_voided=maybe")) == ["include_voided"]
    page = stack.request("GET", grant_path() + "?page[size]=1&page[number]=2").json()
    assert [g["id"] for g in page["data"]] == [grant["id"]] and page["meta"]["page"]["total"] == 2


def test_void_validation(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    grant = stack.request("POST", grant_path(), {"amount": 5, "effective_at": iso(period_start())}).json()
    future = {"at": iso(minute() + timedelta(minutes=5))}
    assert fields(stack.request("POST", grant_path(rest=f"/{grant['id']}/void"), future)) == ["at"]
    past = {"at": iso(period_start() - timedelta(minutes=1))}
    assert fields(stack.request("POST", grant_path(rest=f"/{grant['id']}/void"), past)) == ["at"]
    assert stack.request("GET", grant_path()).json()["data"][-1]["voided_at"] is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": -1}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": True}, "amount"),
        ({"priority": 0}, "priority"),
        ({"priority": 256}, "priority"),
        ({"effective_at": "yesterday"}, "effective_at"),
        ({"min_rollover_amount": 20, "max_rollover_amount": 10}, "min_rollover_amount"),
        ({"expiration": {"duration": "FORTNIGHT", "count": 1}}, "expiration.duration"),
        ({"expiration": {"duration": "DAY", "count": 0}}, "expiration.count"),
        ({"recurrence": {"interval": "PT30M"}}, "recurrence.interval"),
    ],
)
def test_grant_validation_names_the_field(
    stack: Stack, world: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    create_ent(stack)
    body = {"amount": 10, "effective_at": iso(period_start()), **overrides}
    assert fields(stack.request("POST", grant_path(), body)) == [field]
    assert len(stack.request("GET", grant_path()).json()["data"]) == 1


def test_grant_effective_before_current_period_is_400(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    body = {"amount": 10, "effective_at": iso(period_start() - timedelta(minutes=1))}
    assert fields(stack.request("POST", grant_path(), body)) == ["effective_at"]
    assert "amount" in fields(stack.request("POST", grant_path(), {"effective_at": iso(minute())}))


def test_grant_expiration_and_recurrence_are_returned(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    start = period_start()
    body = {
        "amount": 10,
        "effective_at": iso(start),
        "expiration": {"duration": "DAY", "count": 2},
        "recurrence": {"interval": "DAY"},
    }
    grant = stack.request("POST", grant_path(), body).json()
    assert grant["expires_at"] == iso(start + timedelta(days=2))
    assert grant["recurrence"] == {"interval": "P1D", "anchor": iso(start)}
    assert grant["next_recurrence"] == iso(start + timedelta(days=1))
    assert value(stack)["balance"] == "110"


def test_grants_reset_history_on_boolean_are_400(stack: Stack, world: dict[str, Any]) -> None:
    assert stack.request("POST", ent_path(), {"type": "boolean", "feature_key": "sso"}).status == 201
    problem(stack.request("POST", grant_path("sso"), {"amount": 1, "effective_at": iso(minute())}), 400)
    problem(stack.request("GET", grant_path("sso")), 400)
    problem(stack.request("POST", ent_path(rest="/sso/reset")), 400)
    problem(stack.request("GET", ent_path(rest="/sso/history?window_size=PT1H")), 400)


# -- resets ----------------------------------------------------------------------------------------
def test_reset_restarts_usage_and_snaps_issue_grant_back(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 130)])
    assert value(stack)["has_access"] is False
    resp = stack.request("POST", ent_path(rest="/gpt/reset"))
    assert resp.status == 204 and resp.text == "", resp
    v = value(stack)
    assert (v["usage"], v["balance"], v["overage"], v["has_access"]) == ("0", "100", "0", True)
    reset_at = parse(v["current_usage_period"]["from"])
    assert minute() - timedelta(minutes=1) <= reset_at <= minute()
    assert v["last_reset"] == iso(reset_at)
    # retain_anchor=false: the period now runs from the reset for a full interval.
    assert v["current_usage_period"]["to"] == iso(reset_at + timedelta(hours=1))
    assert access(stack)["gpt"]["has_access"] is True
    # A second reset in the same minute (the new period's start) is refused.
    again = {"effective_at": iso(reset_at + timedelta(seconds=30))}
    assert fields(stack.request("POST", ent_path(rest="/gpt/reset"), again)) == ["effective_at"]


def test_reset_retain_anchor_keeps_the_schedule(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    at = period_start() + timedelta(minutes=10)
    resp = stack.request(
        "POST", ent_path(rest="/gpt/reset"), {"effective_at": iso(at), "retain_anchor": True}
    )
    assert resp.status == 204, resp
    v = value(stack)
    assert v["current_usage_period"] == {"from": iso(at), "to": iso(period_start() + timedelta(hours=1))}


def test_reset_with_preserve_overage_carries_it(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 130)])
    resp = stack.request("POST", ent_path(rest="/gpt/reset"), {"preserve_overage": True})
    assert resp.status == 204, resp
    v = value(stack)
    assert (v["usage"], v["balance"], v["overage"], v["has_access"]) == ("0", "70", "0", True)


def test_reset_forgives_overage_by_default_and_entitlement_default_applies(
    stack: Stack, world: dict[str, Any]
) -> None:
    create_ent(stack, preserve_overage_at_reset=True)
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 130)])
    assert stack.request("POST", ent_path(rest="/gpt/reset"), {"preserve_overage": False}).status == 204
    assert value(stack)["balance"] == "100"


def test_reset_effective_at_validation(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    path = ent_path(rest="/gpt/reset")
    for at in (minute() + timedelta(minutes=2), period_start(), period_start() - timedelta(minutes=5)):
        assert fields(stack.request("POST", path, {"effective_at": iso(at)})) == ["effective_at"]
    assert fields(stack.request("POST", path, {"effective_at": "soon"})) == ["effective_at"]
    assert fields(stack.request("POST", path, {"retain_anchor": "maybe"})) == ["retain_anchor"]
    assert value(stack)["last_reset"] == iso(period_start())


# -- value and history -----------------------------------------------------------------------------
def test_value_at_a_past_time(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack)
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 30)])
    created = ent["created_at"]
    assert value(stack, time=created)["usage"] == "30"
    # Before the entitlement existed it granted nothing.
    assert value(stack, time=iso(parse(created) - timedelta(minutes=5))) == {"has_access": False}
    assert fields(stack.request("GET", ent_path(rest="/gpt/value?time=yesterday"))) == ["time"]
    # After a delete, the value before it is still readable by id.
    assert stack.request("DELETE", ent_path(rest="/gpt")).status == 204
    past = value(stack, ent["id"], time=created)
    assert (past["usage"], past["balance"], past["has_access"]) == ("30", "70", True)


def test_history_windows_and_burndown(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    start = period_start()
    grant = stack.request(
        "POST",
        grant_path(),
        {"amount": 50, "priority": 2, "effective_at": iso(start + timedelta(minutes=10))},
    ).json()
    issue = stack.request("GET", grant_path()).json()["data"][0]["id"]
    push(
        stack,
        [
            ev(1, start + timedelta(minutes=1), 30),
            ev(2, start + timedelta(minutes=20), 80),
            ev(3, start + timedelta(minutes=20, seconds=30), 10),
        ],
    )
    q = f"window_size=PT1M&from={iso(start)}&to={iso(start + timedelta(minutes=25))}"
    resp = stack.request("GET", ent_path(rest=f"/gpt/history?{q}"))
    assert resp.status == 200, resp
    body = resp.json()
    assert body["windowed_history"] == [
        {
            "period": {"from": iso(start + timedelta(minutes=1)), "to": iso(start + timedelta(minutes=2))},
            "usage": "30",
            "balance_at_start": "100",
        },
        {
            "period": {"from": iso(start + timedelta(minutes=20)), "to": iso(start + timedelta(minutes=21))},
            "usage": "90",
            "balance_at_start": "120",
        },
    ]
    t10, t25 = iso(start + timedelta(minutes=10)), iso(start + timedelta(minutes=25))
    assert body["burndown_history"] == [
        {
            "period": {"from": iso(start), "to": t10},
            "usage": "30",
            "overage": "0",
            "balance_at_start": "100",
            "grant_balances_at_start": {issue: "100"},
            "balance_at_end": "70",
            "grant_balances_at_end": {issue: "70"},
            "grant_usages": [{"grant_id": issue, "usage": "30"}],
        },
        {
            "period": {"from": t10, "to": t25},
            "usage": "90",
            "overage": "0",
            "balance_at_start": "120",
            "grant_balances_at_start": {issue: "70", grant["id"]: "50"},
            "balance_at_end": "30",
            "grant_balances_at_end": {issue: "0", grant["id"]: "30"},
            "grant_usages": [{"grant_id": issue, "usage": "70"}, {"grant_id": grant["id"], "usage": "20"}],
        },
    ]
    # PT1H windows in UTC vs a +05:30 zone cut the same usage differently but sum the same.
    for tz in ("UTC", "Asia/Kolkata"):
        resp = stack.request("GET", ent_path(rest=f"/gpt/history?window_size=HOUR&window_time_zone={tz}"))
        assert resp.status == 200, resp
        assert sum(int(w["usage"]) for w in resp.json()["windowed_history"]) == 120


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "window_size"),
        ("?window_size=PT5M", "window_size"),
        ("?window_size=PT1H&window_time_zone=Mars/Olympus", "window_time_zone"),
        ("?window_size=PT1H&from=FROM_EARLY", "from"),
        ("?window_size=PT1H&from=tomorrow", "from"),
        ("?window_size=PT1H&from=FROM_OK&to=FROM_OK", "to"),
    ],
)
def test_history_validation(stack: Stack, world: dict[str, Any], query: str, field: str) -> None:
    create_ent(stack)
    query = query.replace("FROM_EARLY", iso(anchor() - timedelta(minutes=1))).replace(
        "FROM_OK", iso(period_start())
    )
    assert fields(stack.request("GET", ent_path(rest=f"/gpt/history{query}"))) == [field]


def test_history_caps_the_number_of_windows(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack, measure_usage_from=iso(minute() - timedelta(days=1)))
    ok = stack.request("GET", ent_path(rest=f"/gpt/history?window_size=PT1M&from={iso(period_start())}"))
    assert ok.status == 200, ok
    day = iso(minute() - timedelta(days=1))
    assert fields(stack.request("GET", ent_path(rest=f"/gpt/history?window_size=PT1M&from={day}"))) == [
        "window_size"
    ]


# -- roles -----------------------------------------------------------------------------------------
def test_viewer_reads_but_does_not_write_and_no_token_is_401(stack: Stack, world: dict[str, Any]) -> None:
    ent = create_ent(stack)
    for path in (
        ent_path(),
        ent_path(rest="/gpt"),
        ent_path(rest="/gpt/value"),
        grant_path(),
        "/customers/acme/entitlement-access",
    ):
        assert stack.request("GET", path, token=VIEWER).status == 200, path
        problem(stack.request("GET", path, token=None), 401)
    writes = [
        ("POST", ent_path(), {"type": "boolean", "feature_key": "sso"}),
        ("DELETE", ent_path(rest=f"/{ent['id']}"), None),
        ("POST", ent_path(rest="/gpt/reset"), None),
        ("POST", grant_path(), {"amount": 1, "effective_at": iso(minute())}),
    ]
    for method, path, body in writes:
        problem(stack.request(method, path, body, token=VIEWER), 403)
        problem(stack.request(method, path, body, token=None), 401)
    assert [e["id"] for e in listed(stack)] == [ent["id"]]
    assert len(stack.request("GET", grant_path()).json()["data"]) == 1


# -- domain events ---------------------------------------------------------------------------------
def subscribe(stack: Stack) -> str:
    sqs, sns = stack.clients["sqs"], stack.clients["sns"]
    url = sqs.create_queue(QueueName="entitlement-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=stack.provisioned.topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def received(stack: Stack, url: str) -> list[dict[str, Any]]:
    sqs = stack.clients["sqs"]
    out: list[dict[str, Any]] = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out += [orjson.loads(m["Body"]) for m in msgs]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
        )
    return out


def test_changes_publish_balance_updated_and_reset(stack: Stack, world: dict[str, Any]) -> None:
    url = subscribe(stack)
    ent = create_ent(stack)
    [created] = received(stack, url)
    assert created["type"] == "entitlements.balance.updated"
    assert created["data"]["entitlement"]["id"] == ent["id"]
    assert created["data"]["customer"]["id"] == world["customer"]["id"]
    assert created["data"]["reason"] == "created" and created["data"]["previous"] is None
    assert created["data"]["value"]["balance"] == "100" and created["data"]["value"]["has_access"] is True

    push(stack, [ev(1, period_start() + timedelta(minutes=1), 85)])
    [usage] = received(stack, url)
    assert usage["type"] == "entitlements.balance.updated"
    assert usage["data"]["reason"] == "usage"
    assert (usage["data"]["value"]["usage"], usage["data"]["value"]["balance"]) == ("85", "15")
    assert usage["data"]["previous"]["balance"] == "100"
    assert usage["data"]["crossed"] == ["usage_percentage:50", "usage_percentage:80"]

    push(stack, [ev(1, period_start() + timedelta(minutes=1), 85)])  # a duplicate: nothing changes
    assert received(stack, url) == []

    push(stack, [ev(2, period_start() + timedelta(minutes=2), 20)])
    [revoked] = received(stack, url)
    assert revoked["data"]["value"]["has_access"] is False
    assert revoked["data"]["crossed"] == ["usage_percentage:90", "usage_percentage:100", "access_revoked"]

    assert stack.request("POST", ent_path(rest="/gpt/reset")).status == 204
    events = received(stack, url)
    assert [e["type"] for e in events] == ["entitlements.reset", "entitlements.balance.updated"]
    reset, after = events
    assert reset["data"]["entitlement"]["id"] == ent["id"]
    assert reset["data"]["previous_period_usage"] == "105"
    assert reset["data"]["value"]["usage"] == "0" and reset["data"]["value"]["balance"] == "100"
    assert after["data"]["reason"] == "reset" and "access_granted" in after["data"]["crossed"]
    assert all(isinstance(e["id"], str) and e["id"] and e["time"] for e in events)


def test_boolean_changes_publish_nothing(stack: Stack, world: dict[str, Any]) -> None:
    url = subscribe(stack)
    assert stack.request("POST", ent_path(), {"type": "boolean", "feature_key": "sso"}).status == 201
    assert received(stack, url) == []


def test_malformed_bodies_are_400(stack: Stack, world: dict[str, Any]) -> None:
    for raw in ("not json", "[1]", '"metered"'):
        problem(stack.request("POST", ent_path(), raw), 400)
    mismatch = {"type": "boolean", "feature_id": world["flag"]["id"], "feature_key": "gpt"}
    assert fields(stack.request("POST", ent_path(), mismatch)) == ["feature_key"]
    assert listed(stack) == []


def test_each_customer_burns_only_its_own_usage(stack: Stack, world: dict[str, Any]) -> None:
    create_customer(stack, "globex")
    create_ent(stack)
    create_ent(stack, "globex", issue={"amount": 10})
    at = period_start() + timedelta(minutes=1)
    push(stack, [ev(1, at, 4), ev(2, at, 6, subject="globex-b"), ev(3, at, 1, subject="nobody")])
    assert (value(stack)["usage"], value(stack)["balance"]) == ("4", "96")
    g = value(stack, customer="globex")
    assert (g["usage"], g["balance"], g["has_access"]) == ("6", "4", True)


@pytest.mark.parametrize(("aggregation", "usage", "balance"), [("max", "30", "70"), ("latest", "20", "80")])
def test_gauge_meters_act_as_limits(stack: Stack, aggregation: str, usage: str, balance: str) -> None:
    meter = create_meter(stack, f"m_{aggregation}", aggregation)
    create_feature(stack, "gpt", meter["id"])
    create_customer(stack)
    create_ent(stack)
    start = period_start()
    push(stack, [ev(1, start + timedelta(minutes=1), 10), ev(2, start + timedelta(minutes=2), 30)])
    push(stack, [ev(3, start + timedelta(minutes=3), 20)])
    v = value(stack)
    assert (v["usage"], v["balance"], v["has_access"]) == (usage, balance, True)


def test_reset_rolls_grants_over(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    start = period_start()
    body = {"amount": 50, "priority": 2, "effective_at": iso(start + timedelta(seconds=45))}
    grant = stack.request("POST", grant_path(), body).json()
    assert grant["effective_at"] == iso(start)  # truncated to the minute
    push(stack, [ev(1, start + timedelta(minutes=1), 120)])
    assert value(stack)["grant_balances"][grant["id"]] == "30"
    assert stack.request("POST", ent_path(rest="/gpt/reset")).status == 204
    v = value(stack)
    assert (v["usage"], v["balance"]) == ("0", "130")
    assert v["grant_balances"][grant["id"]] == "30"


def test_void_at_a_past_minute_keeps_earlier_burns(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack, issue={"amount": 10})
    start = period_start()
    grant = stack.request(
        "POST", grant_path(), {"amount": 50, "priority": 2, "effective_at": iso(start)}
    ).json()
    push(stack, [ev(1, start + timedelta(minutes=1), 30), ev(2, start + timedelta(minutes=10), 5)])
    at = start + timedelta(minutes=5, seconds=20)
    resp = stack.request("POST", grant_path(rest=f"/{grant['id']}/void"), {"at": iso(at)})
    assert resp.status == 200, resp
    assert resp.json()["voided_at"] == iso(start + timedelta(minutes=5))
    v = value(stack)
    # 30 burnt 10 of the issue grant and 20 of the voided one; the 5 after the void is overage.
    assert (v["usage"], v["balance"], v["overage"], v["has_access"]) == ("35", "0", "5", False)


def test_late_event_before_a_reset_replays_the_rollover(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack, issue={"amount": 10})
    start = period_start()
    grant = stack.request(
        "POST", grant_path(), {"amount": 50, "priority": 2, "effective_at": iso(start)}
    ).json()
    reset_at = start + timedelta(minutes=10)
    body = {"effective_at": iso(reset_at), "retain_anchor": True}
    assert stack.request("POST", ent_path(rest="/gpt/reset"), body).status == 204
    push(stack, [ev(1, reset_at + timedelta(minutes=1), 5)])
    assert (value(stack)["balance"], value(stack)["usage"]) == ("55", "5")
    # Stamped before the reset, it burns the old period: 10 of the issue grant, 20 of the other,
    # which rolls 30 into the new period; the issue grant snaps back to 10.
    push(stack, [ev(2, start + timedelta(minutes=5), 30)])
    v = value(stack)
    assert (v["usage"], v["balance"]) == ("5", "35")
    assert v["grant_balances"][grant["id"]] == "30"


def test_entitlement_access_recomputes_a_state_whose_period_ended(
    stack: Stack, world: dict[str, Any]
) -> None:
    from shared.settings import get_settings

    ent = create_ent(stack)
    push(stack, [ev(1, period_start() + timedelta(minutes=1), 100)])
    assert access(stack)["gpt"]["has_access"] is False
    ddb, table = stack.clients["dynamodb"], get_settings().config_table
    key = {"pk": {"S": f"ACCESS#{ent['customer_id']}"}, "sk": {"S": "FEAT#gpt"}}
    # A stored state from an ended period (the sweep hasn't run) that claims access.
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET has_access = :t, period_to = :p",
        ExpressionAttributeValues={":t": {"BOOL": True}, ":p": {"S": iso(period_start())}},
    )
    assert access(stack)["gpt"]["has_access"] is False
    stored = ddb.get_item(TableName=table, Key=key)["Item"]
    assert stored["period_to"]["S"] == iso(period_start() + timedelta(hours=1))


def test_grant_and_void_publish_balance_updates(stack: Stack, world: dict[str, Any]) -> None:
    create_ent(stack)
    url = subscribe(stack)
    grant = stack.request("POST", grant_path(), {"amount": 25, "effective_at": iso(period_start())}).json()
    [granted] = received(stack, url)
    assert granted["type"] == "entitlements.balance.updated" and granted["data"]["reason"] == "grant"
    assert granted["data"]["value"]["balance"] == "125"
    assert stack.request("POST", grant_path(rest=f"/{grant['id']}/void")).status == 200
    [voided] = received(stack, url)
    assert voided["data"]["reason"] == "void" and voided["data"]["value"]["balance"] == "100"
    assert stack.request("DELETE", ent_path(rest="/gpt")).status == 204


# -- hostile times and intervals -------------------------------------------------------------------
# Instants outside the engine's range (1970 to 2200) and intervals beyond 100 years used to reach the
# period arithmetic and overflow: a 500 after the entitlement was written, and every later list or
# value of that customer a 500 too. They are 400s naming the field, with nothing written.
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"usage_period": {"interval": "P1000000Y"}, "measure_usage_from": "NOW"}, "usage_period.interval"),
        (
            {"usage_period": {"interval": "PT9999999999H"}, "measure_usage_from": "NOW"},
            "usage_period.interval",
        ),
        ({"usage_period": {"interval": "P101Y"}, "measure_usage_from": "NOW"}, "usage_period.interval"),
        ({"measure_usage_from": "0001-01-01T00:00:00Z"}, "measure_usage_from"),
        ({"measure_usage_from": "9999-12-31T23:59:00Z"}, "measure_usage_from"),
        ({"usage_period": {"interval": "PT1H", "anchor": "0001-01-01T00:00:00Z"}}, "usage_period.anchor"),
        ({"usage_period": {"interval": "PT1H", "anchor": "9999-12-31T23:59:00Z"}}, "usage_period.anchor"),
    ],
)
def test_out_of_range_times_and_intervals_are_400_and_write_nothing(
    stack: Stack, world: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    assert fields(stack.request("POST", ent_path(), metered_body(**overrides))) == [field]
    assert listed(stack) == []
    create_ent(stack, usage_period={"interval": "P100Y"}, measure_usage_from="NOW")  # the longest


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"effective_at": "9999-12-31T23:00:00Z", "expiration": {"duration": "YEAR", "count": 1000}},
            "effective_at",
        ),
        ({"effective_at": "2199-12-31T23:59:00Z"}, None),  # the last minute in range is fine
        ({"recurrence": {"interval": "P999999999D"}}, "recurrence.interval"),
        ({"recurrence": {"interval": "PT1H", "anchor": "0001-01-01T00:00:00Z"}}, "recurrence.anchor"),
    ],
)
def test_grant_out_of_range_times_and_intervals_are_400(
    stack: Stack, world: dict[str, Any], overrides: dict[str, Any], field: str | None
) -> None:
    create_ent(stack)
    resp = stack.request(
        "POST", grant_path(), {"amount": 10, "effective_at": iso(period_start()), **overrides}
    )
    if field is None:
        assert resp.status == 201, resp
        return
    assert fields(resp) == [field]
    assert len(stack.request("GET", grant_path()).json()["data"]) == 1  # the issue grant only


@pytest.mark.parametrize(
    ("rest", "field"),
    [
        ("/gpt/value?time=9999-12-31T23:59:59Z", "time"),
        ("/gpt/value?time=0001-01-01T00:00:00Z", "time"),
        ("/gpt/history?window_size=PT1H&to=9999-12-31T00:00:00Z", "to"),
    ],
)
def test_out_of_range_query_times_are_400(stack: Stack, world: dict[str, Any], rest: str, field: str) -> None:
    create_ent(stack)
    resp = stack.request("GET", ent_path(rest=rest))
    assert fields(resp) == [field]
    assert problem(resp, 400)["invalid_parameters"][0]["source"] == "query"
