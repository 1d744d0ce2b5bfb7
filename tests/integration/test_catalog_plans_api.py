"""Plans over /v3/openmeter/plans: versions per key, lifecycle, validation errors, bad input."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from functions.api.routes import catalog as routes
from shared.catalog.errors import ConflictError
from shared.catalog.repository import PlanRepository
from shared.catalog.requests import create_plan
from tests.integration import conftest as integration
from tests.support.catalog import (
    UNKNOWN,
    check,
    features,
    fields,
    flat_card,
    full_phases,
    plan_body,
    problem,
    usage_card,
)
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import VIEWER, Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack


def create(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    return check(stack.request("POST", "/plans", body), "create-plan", 201)


def publish(stack: Stack, plan_id: str) -> dict[str, Any]:
    return check(stack.request("POST", f"/plans/{plan_id}/publish"), "publish-plan", 200)


def test_a_plan_with_every_price_type_round_trips(stack: Stack) -> None:
    f = features(stack)
    taxes = check(stack.request("GET", "/tax-codes"), "list-tax-codes", 200)["data"]
    saas = next(t["id"] for t in taxes if t["key"] == "txcd_10103001")
    body = plan_body(phases=full_phases(f, saas), labels={"tier": "pro"}, description="Pro plan")
    plan = create(stack, body)
    assert (plan["status"], plan["version"], plan["validation_errors"]) == ("draft", 1, [])
    assert "effective_from" not in plan and plan["pro_rating_enabled"] is True
    paid = plan["phases"][1]["rate_cards"]
    assert paid[0]["tax_config"] == {"behavior": "exclusive", "code": {"id": saas}}
    assert paid[1]["price"]["tiers"][0] == {
        "up_to_amount": "1000",
        "flat_price": {"type": "flat", "amount": "5"},
        "unit_price": {"type": "unit", "amount": "0.3"},
    }
    assert paid[1]["unit_config"]["conversion_factor"] == "1000"
    assert paid[1]["discounts"] == {"percentage": 10, "usage": "100"}
    assert paid[1]["commitments"] == {"minimum_amount": "10", "maximum_amount": "1000"}
    assert paid[2]["entitlement"] == {"type": "static", "config": {"saml": True}}
    assert paid[3].get("billing_cadence") is None and paid[3]["payment_term"] == "in_arrears"
    got = check(stack.request("GET", f"/plans/{plan['id']}"), "get-plan", 200)
    assert got == plan


def test_versions_per_key_one_draft_and_publish_archives_the_previous(stack: Stack) -> None:
    v1 = create(stack, plan_body())
    again = stack.request("POST", "/plans", plan_body())
    assert problem(again, 409)["conflicting_entity_id"] == v1["id"]
    v1 = publish(stack, v1["id"])
    assert v1["status"] == "active" and "effective_from" in v1
    v2 = create(stack, plan_body(name="Pro 2"))
    assert (v2["version"], v2["status"]) == (2, "draft")
    publish(stack, v2["id"])
    old = check(stack.request("GET", f"/plans/{v1['id']}"), "get-plan", 200)
    assert old["status"] == "archived" and old["effective_to"] >= old["effective_from"]
    listed = check(stack.request("GET", "/plans?sort=version"), "list-plans", 200)
    assert [(p["version"], p["status"]) for p in listed["data"]] == [(1, "archived"), (2, "active")]
    active = check(stack.request("GET", "/plans?filter[status][eq]=active"), "list-plans", 200)
    assert [p["id"] for p in active["data"]] == [v2["id"]]


def test_only_drafts_are_updated_and_only_drafts_or_archived_deleted(stack: Stack) -> None:
    plan = create(stack, plan_body())
    update = {"name": "Renamed", "phases": plan_body()["phases"], "pro_rating_enabled": False}
    updated = check(stack.request("PUT", f"/plans/{plan['id']}", update), "update-plan", 200)
    assert (updated["name"], updated["pro_rating_enabled"], updated["key"]) == ("Renamed", False, "pro")
    publish(stack, plan["id"])
    assert fields(stack.request("PUT", f"/plans/{plan['id']}", update)) == [("planId", "invalid")]
    assert fields(stack.request("DELETE", f"/plans/{plan['id']}")) == [("planId", "invalid")]
    assert fields(stack.request("POST", f"/plans/{plan['id']}/publish")) == [("planId", "invalid")]
    archived = check(stack.request("POST", f"/plans/{plan['id']}/archive"), "archive-plan", 200)
    assert archived["status"] == "archived"
    assert stack.request("DELETE", f"/plans/{plan['id']}").status == 204
    problem(stack.request("GET", f"/plans/{plan['id']}"), 410)
    problem(stack.request("DELETE", f"/plans/{plan['id']}"), 404)
    # The deleted draft's claim is released: the key takes a new draft, with the next version.
    draft = create(stack, plan_body())
    assert draft["version"] == 2
    assert stack.request("DELETE", f"/plans/{draft['id']}").status == 204
    assert create(stack, plan_body())["version"] == 3


def test_unknown_and_malformed_ids(stack: Stack) -> None:
    problem(stack.request("GET", f"/plans/{UNKNOWN}"), 404)
    assert fields(stack.request("GET", "/plans/not-a-ulid")) == [("planId", "matches_regex")]
    problem(stack.request("POST", f"/plans/{UNKNOWN}/publish"), 404)


# Each engine validation code, the change to a valid plan that causes it, and the field it names.
def _phases(**card: Any) -> list[dict[str, Any]]:
    return [{"key": "default", "name": "Default", "rate_cards": [flat_card(**card)]}]


def _cases(f: dict[str, str]) -> list[tuple[str, list[dict[str, Any]], str]]:
    two = [
        {"key": "a", "name": "A", "rate_cards": [flat_card()]},
        {"key": "b", "name": "B", "rate_cards": [flat_card()]},
    ]
    return [
        (
            "plan_phase_duplicated_key",
            [{**two[0], "duration": "P1M"}, {**two[1], "key": "a"}],
            "phases[1].key",
        ),
        ("plan_has_non_last_phase_with_no_duration", copy.deepcopy(two), "phases[0].duration"),
        (
            "plan_has_last_phase_with_duration",
            [{**two[0], "duration": "P1M"}, {**two[1], "duration": "P1M"}],
            "phases[1].duration",
        ),
        (
            "plan_phase_duration_less_then_an_hour",
            [{**two[0], "duration": "PT30M"}, two[1]],
            "phases[0].duration",
        ),
        (
            "plan_phase_has_no_rate_cards",
            [{"key": "a", "name": "A", "rate_cards": []}],
            "phases[0].rate_cards",
        ),
        (
            "rate_card_duplicated_key",
            [{"key": "a", "name": "A", "rate_cards": [flat_card(), flat_card()]}],
            "phases[0].rate_cards[1].key",
        ),
        (
            "billing_cadence_invalid_value",
            _phases(billing_cadence="PT30M"),
            "phases[0].rate_cards[0].billing_cadence",
        ),
        (
            "rate_card_billing_cadence_unaligned",
            _phases(billing_cadence="P1W"),
            "phases[0].rate_cards[0].billing_cadence",
        ),
        (
            "entitlement_template_with_no_feature",
            _phases(entitlement={"type": "boolean"}),
            "phases[0].rate_cards[0].entitlement",
        ),
        (
            "usage_based_price_with_no_feature",
            _phases(price={"type": "unit", "amount": "1"}, payment_term="in_arrears"),
            "phases[0].rate_cards[0].feature",
        ),
        (
            "usage_based_price_with_feature_and_no_meter",
            [{"key": "a", "name": "A", "rate_cards": [usage_card(f["sso"], key="sso")]}],
            "phases[0].rate_cards[0].feature.id",
        ),
        (
            "entitlement_template_usage_period_less_then_an_hour",
            [
                {
                    "key": "a",
                    "name": "A",
                    "rate_cards": [
                        usage_card(f["tokens"], entitlement={"type": "metered", "usage_period": "PT10M"})
                    ],
                }
            ],
            "phases[0].rate_cards[0].entitlement.usage_period",
        ),
        (
            "usage_discount_with_flat_price",
            _phases(discounts={"usage": "10"}),
            "phases[0].rate_cards[0].discounts.usage",
        ),
        (
            "usage_discount_negative_quantity",
            [{"key": "a", "name": "A", "rate_cards": [usage_card(f["tokens"], discounts={"usage": "-5"})]}],
            "phases[0].rate_cards[0].discounts.usage",
        ),
    ]


CODES = [c[0] for c in _cases({"tokens": UNKNOWN, "sso": UNKNOWN})]


@pytest.mark.parametrize("code", CODES)
def test_each_validation_code_is_reported_and_blocks_publishing(stack: Stack, code: str) -> None:
    f = features(stack)
    phases, field = next((p, fld) for c, p, fld in _cases(f) if c == code)
    plan = create(stack, plan_body(phases=phases))
    assert [(v["code"], v["field"]) for v in plan["validation_errors"]] == [(code, field)]
    resp = stack.request("POST", f"/plans/{plan['id']}/publish")
    assert fields(resp) == [(field, "invalid")]
    assert problem(resp, 400)["invalid_parameters"][0]["reason"].startswith(f"{code}: ")
    check(resp, "publish-plan", 400)
    assert check(stack.request("GET", f"/plans/{plan['id']}"), "get-plan", 200)["status"] == "draft"


def test_fixing_a_draft_clears_its_validation_errors_and_it_publishes(stack: Stack) -> None:
    plan = create(stack, plan_body(phases=_phases(billing_cadence="P1W")))
    assert plan["validation_errors"]
    fixed = stack.request(
        "PUT", f"/plans/{plan['id']}", {"name": "Pro", "phases": _phases(billing_cadence="P3M")}
    )
    assert check(fixed, "update-plan", 200)["validation_errors"] == []
    assert publish(stack, plan["id"])["status"] == "active"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"billing_cadence": "P5D"}, [("billing_cadence", "enum")]),
        ({"billing_cadence": "monthly"}, [("billing_cadence", "matches_regex")]),
        ({"currency": "usd"}, [("currency", "matches_regex")]),
        ({"phases": []}, [("phases", "min_items")]),
        (
            {"phases": _phases(feature={"id": UNKNOWN}, key="platform")},
            [("phases[0].rate_cards[0].feature.id", "invalid")],
        ),
        (
            {"phases": _phases(tax_config={"code": {"id": UNKNOWN}})},
            [("phases[0].rate_cards[0].tax_config.code.id", "invalid")],
        ),
        ({"phases": _phases(price={"type": "package"})}, [("phases[0].rate_cards[0].price.type", "enum")]),
        (
            {"phases": _phases(price={"type": "flat", "amount": "-1"})},
            [("phases[0].rate_cards[0].price.amount", "invalid")],
        ),
        (
            {"phases": _phases(price={"type": "unit", "amount": "1"})},
            [("phases[0].rate_cards[0].payment_term", "invalid")],
        ),
        (
            {"phases": _phases(commitments={"minimum_amount": "1"})},
            [("phases[0].rate_cards[0].commitments", "invalid")],
        ),
        (
            {"phases": _phases(discounts={"percentage": 120})},
            [("phases[0].rate_cards[0].discounts.percentage", "invalid")],
        ),
        (
            {
                "phases": _phases(
                    billing_cadence=None, price={"type": "unit", "amount": "1"}, payment_term=None
                )
            },
            [("phases[0].rate_cards[0].billing_cadence", "required")],
        ),
        (
            {
                "phases": _phases(
                    price={
                        "type": "graduated",
                        "tiers": [{"up_to_amount": "5"}],
                    }
                )
            },
            [("phases[0].rate_cards[0].price.tiers[0]", "required")],
        ),
        (
            {
                "phases": _phases(
                    price={
                        "type": "graduated",
                        "tiers": [
                            {"up_to_amount": "10", "unit_price": {"type": "unit", "amount": "1"}},
                            {"up_to_amount": "5", "unit_price": {"type": "unit", "amount": "1"}},
                        ],
                    }
                )
            },
            [("phases[0].rate_cards[0].price.tiers[1].up_to_amount", "invalid")],
        ),
        (
            {"phases": _phases(unit_config={"operation": "divide", "conversion_factor": "0"})},
            [("phases[0].rate_cards[0].unit_config.conversion_factor", "invalid")],
        ),
        (
            {"phases": _phases(entitlement={"type": "static", "config": [1]})},
            [("phases[0].rate_cards[0].entitlement.config", "is_object")],
        ),
        ({"phases": _phases(surprise=1)}, [("phases[0].rate_cards[0].surprise", "unknown_property")]),
        # Durations beyond a century: the cadence comparison overflowed the calendar (a 500), and a
        # phase that long would overflow every subscription's phase arithmetic.
        (
            {"phases": _phases(billing_cadence="P999999999Y")},
            [("phases[0].rate_cards[0].billing_cadence", "invalid")],
        ),
        (
            {"phases": _phases(billing_cadence="PT99999999999H")},
            [("phases[0].rate_cards[0].billing_cadence", "invalid")],
        ),
        (
            {
                "phases": [
                    {"key": "trial", "name": "Trial", "duration": "P101Y", "rate_cards": [flat_card()]},
                    {"key": "paid", "name": "Paid", "rate_cards": [flat_card()]},
                ]
            },
            [("phases[0].duration", "invalid")],
        ),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    stack: Stack, change: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    body = plan_body()
    body.update(change)
    body["phases"] = [
        {**p, "rate_cards": [{k: v for k, v in rc.items() if v is not None} for rc in p["rate_cards"]]}
        for p in body["phases"]
    ]
    resp = stack.request("POST", "/plans", body)
    assert fields(resp) == expected
    check(resp, "create-plan", 400)
    assert check(stack.request("GET", "/plans"), "list-plans", 200)["data"] == []


def test_rate_cards_must_name_live_features_with_their_key(stack: Stack) -> None:
    f = features(stack)
    wrong_key = [{"key": "a", "name": "A", "rate_cards": [usage_card(f["tokens"], key="other")]}]
    assert fields(stack.request("POST", "/plans", plan_body(phases=wrong_key))) == [
        ("phases[0].rate_cards[0].key", "invalid")
    ]
    metered_no_meter = [
        {
            "key": "a",
            "name": "A",
            "rate_cards": [
                flat_card(key="sso", feature={"id": f["sso"]}, entitlement={"type": "metered", "limit": 1})
            ],
        }
    ]
    assert fields(stack.request("POST", "/plans", plan_body(phases=metered_no_meter))) == [
        ("phases[0].rate_cards[0].entitlement.type", "invalid")
    ]
    assert stack.request("DELETE", f"/features/{f['tokens']}").status == 204
    ok = [{"key": "a", "name": "A", "rate_cards": [usage_card(f["tokens"])]}]
    assert fields(stack.request("POST", "/plans", plan_body(phases=ok))) == [
        ("phases[0].rate_cards[0].feature.id", "invalid")
    ]


def test_publishing_rechecks_features_archived_since_the_draft(stack: Stack) -> None:
    f = features(stack)
    plan = create(
        stack, plan_body(phases=[{"key": "a", "name": "A", "rate_cards": [usage_card(f["tokens"])]}])
    )
    assert stack.request("DELETE", f"/features/{f['tokens']}").status == 204
    assert fields(stack.request("POST", f"/plans/{plan['id']}/publish")) == [
        ("phases[0].rate_cards[0].feature.id", "invalid")
    ]


def test_two_creates_racing_for_a_key_leave_one_draft(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both creators read "no draft" before either writes: the conditional claims decide.
    monkeypatch.setattr(PlanRepository, "draft_id", lambda self, key: None)
    svc = routes.plans()
    first = svc.create(create_plan(plan_body()))
    with pytest.raises(ConflictError):
        svc.create(create_plan(plan_body()))
    monkeypatch.undo()
    versions = svc.repo.versions("pro")
    assert [(p.id, p.version) for p, _ in versions] == [(first.id, 1)]
    assert svc.repo.draft_id("pro") == first.id


def test_viewers_read_but_do_not_write(stack: Stack) -> None:
    plan = create(stack, plan_body())
    assert stack.request("GET", f"/plans/{plan['id']}", token=VIEWER).status == 200
    assert stack.request("POST", "/plans", plan_body(key="other"), token=VIEWER).status == 403
    assert stack.request("POST", f"/plans/{plan['id']}/publish", token=VIEWER).status == 403


def test_concurrent_creates_of_a_key_leave_one_draft(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two threads both see "no draft" (a barrier holds them after the check), then both write.
    barrier = threading.Barrier(2, timeout=10)
    original = PlanRepository.draft_id
    waited: set[int] = set()

    def draft_id(self: PlanRepository, key: str) -> str | None:
        found = original(self, key)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        return found

    # DynamoDB applies a transaction atomically; in-process moto does not under threads (a cancelled
    # transaction restores a snapshot of the tables, undoing the other thread's commit), so the
    # transactions themselves are serialised here. The race under test is the check-then-write.
    lock = threading.Lock()
    transact = PlanRepository._transact

    def atomic(self: PlanRepository, items: list[dict[str, Any]], error: type[Exception]) -> None:
        with lock:
            transact(self, items, error)

    monkeypatch.setattr(PlanRepository, "draft_id", draft_id)
    monkeypatch.setattr(PlanRepository, "_transact", atomic)
    svc = routes.plans()
    outcomes: list[object] = []

    def create_one() -> None:
        try:
            outcomes.append(svc.create(create_plan(plan_body())))
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=create_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [o for o in outcomes if not isinstance(o, ConflictError)]
    conflicts = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(created) == 1 and len(conflicts) == 1, outcomes
    assert conflicts[0].conflicting_entity_id == created[0].id  # type: ignore[attr-defined]
    assert [p.id for p, _ in svc.repo.versions("pro")] == [created[0].id]  # type: ignore[attr-defined]


def test_templates_default_their_usage_period_and_need_a_type(stack: Stack) -> None:
    f = features(stack)
    card = usage_card(f["tokens"], billing_cadence="P1D", entitlement={"type": "metered", "limit": 5})
    plan = create(stack, plan_body(phases=[{"key": "a", "name": "A", "rate_cards": [card]}]))
    assert plan["phases"][0]["rate_cards"][0]["entitlement"]["usage_period"] == "P1D"
    empty = [{"key": "a", "name": "A", "rate_cards": [usage_card(f["tokens"], entitlement={})]}]
    assert fields(stack.request("POST", "/plans", plan_body(key="b", phases=empty))) == [
        ("phases[0].rate_cards[0].entitlement.type", "enum")
    ]


def test_a_version_too_large_for_one_item_is_a_400(stack: Stack) -> None:
    cards = [flat_card(key=f"c{j}", description="x" * 1024) for j in range(100)]
    phases = [{"key": f"p{i}", "name": "P", "duration": "P1M", "rate_cards": cards} for i in range(4)]
    resp = stack.request("POST", "/plans", plan_body(phases=phases))
    assert fields(resp) == [("phases", "invalid")]
    too_many = [{"key": "a", "name": "A", "rate_cards": [flat_card(key=f"c{j}") for j in range(101)]}]
    assert fields(stack.request("POST", "/plans", plan_body(phases=too_many))) == [
        ("phases[0].rate_cards", "max_items")
    ]
