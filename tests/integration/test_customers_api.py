"""Customers over /v3/openmeter/customers: CRUD, validation, claims (409s), soft delete, attribution."""

from __future__ import annotations

from typing import Any

import pytest

from shared.customers.attribution import Attribution, CustomerRef
from shared.customers.models import MAX_SUBJECT_KEYS, Customer
from shared.customers.repository import CustomerRepository, TransactionConflict
from shared.settings import get_settings
from tests.support import contract
from tests.support.contract import full_headers  # noqa: F401  (fixture)
from tests.support.harness import VIEWER, Stack
from tests.support.problems import problem

pytestmark = pytest.mark.usefixtures("full_headers")

UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
ADDRESS = {
    "country": "US",
    "postal_code": "94103",
    "state": "CA",
    "city": "San Francisco",
    "line1": "1 Market St",
    "line2": "Floor 2",
    "phone_number": "+1 555 0100",
}


def customer_body(key: str = "acme", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "name": f"{key.title()} Inc",
        "description": "A customer",
        "labels": {"env": "test"},
        "usage_attribution": {"subject_keys": [f"{key}-dept-a", f"{key}-dept-b"]},
        "primary_email": f"billing@{key}.example",
        "currency": "USD",
        "billing_address": ADDRESS,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(stack: Stack, key: str = "acme", **overrides: Any) -> dict[str, Any]:
    resp = stack.request("POST", "/customers", customer_body(key, **overrides))
    assert resp.status == 201, resp
    return contract.validate(resp, "create-customer")


def params(resp: Any) -> list[tuple[str, str | None]]:
    return [(p["field"], p.get("rule")) for p in problem(resp, 400)["invalid_parameters"]]


def keys(resp: Any) -> list[str]:
    assert resp.status == 200, resp
    contract.validate(resp, "list-customers")
    return [c["key"] for c in resp.json()["data"]]


def conflict(resp: Any, operation: str) -> dict[str, Any]:
    body = problem(resp, 409)
    contract.validate(resp, operation, response_ref="Conflict")
    return body


def attribution() -> Attribution:
    from shared.aws import clients

    return Attribution(clients.dynamodb(), get_settings().config_table)


def resolved(*subjects: str) -> dict[str, str]:
    return {s: ref.id for s, ref in attribution().resolve_subjects(subjects).items()}


# -- create --------------------------------------------------------------------------------------
def test_create_returns_the_customer(stack: Stack) -> None:
    resp = stack.request("POST", "/customers", customer_body())
    assert resp.status == 201, resp
    assert resp.headers.get("content-type") == "application/json"
    body = contract.validate(resp, "create-customer")
    assert body["key"] == "acme"
    assert body["name"] == "Acme Inc"
    assert body["usage_attribution"] == {"subject_keys": ["acme-dept-a", "acme-dept-b"]}
    assert body["primary_email"] == "billing@acme.example"
    assert body["currency"] == "USD"
    assert body["billing_address"] == ADDRESS
    assert body["labels"] == {"env": "test"}
    assert body["created_at"] == body["updated_at"]
    assert "deleted_at" not in body


def test_create_minimal(stack: Stack) -> None:
    resp = stack.request("POST", "/customers", {"key": "solo", "name": "Solo"})
    body = contract.validate(resp, "create-customer")
    assert resp.status == 201
    assert body["usage_attribution"] == {"subject_keys": []}
    assert set(body) == {"id", "key", "name", "usage_attribution", "created_at", "updated_at"}


def test_create_partial_address_and_any_key_string(stack: Stack) -> None:
    body = create(stack, "019ae40f-4258-7f15-9491-842f42a7d6ac", billing_address={"country": "DE"})
    assert body["billing_address"] == {"country": "DE"}
    got = stack.request("GET", "/customers/019ae40f-4258-7f15-9491-842f42a7d6ac")
    assert got.json() == body


def test_repeated_subject_keys_and_key_as_subject_are_fine(stack: Stack) -> None:
    body = create(stack, usage_attribution={"subject_keys": ["acme", "x", "acme", "x"]})
    assert body["usage_attribution"]["subject_keys"] == ["acme", "x"]
    assert resolved("acme", "x") == {"acme": body["id"], "x": body["id"]}


def test_create_with_the_maximum_subject_keys(stack: Stack) -> None:
    subjects = [f"s{i}" for i in range(MAX_SUBJECT_KEYS)]
    body = create(stack, usage_attribution={"subject_keys": subjects})
    assert body["usage_attribution"]["subject_keys"] == subjects
    assert len(resolved(*subjects)) == MAX_SUBJECT_KEYS


CREATE_INVALID: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"key": ""}, [("key", "min_length")]),
    ({"key": "k" * 257}, [("key", "max_length")]),
    ({"key": 42}, [("key", "is_string")]),
    ({"name": ""}, [("name", "min_length")]),
    ({"name": "n" * 257}, [("name", "max_length")]),
    ({"description": "d" * 1025}, [("description", "max_length")]),
    ({"colour": "blue"}, [("colour", "unknown_property")]),
    ({"id": UNKNOWN_ULID}, [("id", "unknown_property")]),
    ({"currency": "usd"}, [("currency", "matches_regex")]),
    ({"currency": "US"}, [("currency", "min_length")]),
    ({"currency": "USDX"}, [("currency", "max_length")]),
    ({"currency": "U5D"}, [("currency", "matches_regex")]),
    ({"primary_email": "not-an-email"}, [("primary_email", "matches_regex")]),
    ({"labels": {"kong_team": "a"}}, [("labels", "invalid")]),
    ({"labels": {"env": "has space"}}, [("labels", "invalid")]),
    ({"usage_attribution": {}}, [("usage_attribution.subject_keys", "required")]),
    ({"usage_attribution": {"subject_keys": "a"}}, [("usage_attribution.subject_keys", "is_array")]),
    ({"usage_attribution": {"subject_keys": [""]}}, [("usage_attribution.subject_keys[0]", "min_length")]),
    (
        {"usage_attribution": {"subject_keys": ["ok", "s" * 257]}},
        [("usage_attribution.subject_keys[1]", "max_length")],
    ),
    (
        {"usage_attribution": {"subject_keys": [f"s{i}" for i in range(MAX_SUBJECT_KEYS + 1)]}},
        [("usage_attribution.subject_keys", "max_items")],
    ),
    (
        {"usage_attribution": {"subject_keys": [], "extra": 1}},
        [("usage_attribution.extra", "unknown_property")],
    ),
    ({"billing_address": {"country": "USA"}}, [("billing_address.country", "matches_regex")]),
    ({"billing_address": {"country": "us"}}, [("billing_address.country", "matches_regex")]),
    ({"billing_address": {"street": "x"}}, [("billing_address.street", "unknown_property")]),
    ({"billing_address": "Main St"}, [("billing_address", "is_object")]),
]


def test_create_validation(stack: Stack, subtests: pytest.Subtests) -> None:
    for overrides, expected in CREATE_INVALID:
        with subtests.test(msg=str(overrides)[:80]):
            resp = stack.request("POST", "/customers", {**customer_body(), **overrides})
            assert params(resp) == expected
            contract.validate(resp, "create-customer")
    assert keys(stack.request("GET", "/customers")) == []
    assert resolved("acme", "acme-dept-a") == {}


def test_missing_required_fields(stack: Stack) -> None:
    resp = stack.request("POST", "/customers", {"description": "x"})
    assert sorted(params(resp)) == [("key", "required"), ("name", "required")]


def test_create_non_object_body(stack: Stack) -> None:
    for raw in (b"{nope", b"[]", b'"customer"', b""):
        assert params(stack.request("POST", "/customers", raw))[0][0] == "body", raw


# -- conflicts (409) -----------------------------------------------------------------------------
def test_duplicate_key_is_409(stack: Stack) -> None:
    first = create(stack)
    body = conflict(
        stack.request("POST", "/customers", customer_body(name="Other", usage_attribution=None)),
        "create-customer",
    )
    assert body["detail"] == "A customer with key [acme] already exists"
    assert body["conflicting_entity_id"] == first["id"]
    assert keys(stack.request("GET", "/customers")) == ["acme"]


def test_subject_key_attributed_elsewhere_is_409(stack: Stack) -> None:
    first = create(stack)
    body = conflict(
        stack.request(
            "POST",
            "/customers",
            customer_body("globex", usage_attribution={"subject_keys": ["new", "acme-dept-b"]}),
        ),
        "create-customer",
    )
    assert "[acme-dept-b]" in body["detail"]
    assert body["conflicting_entity_id"] == first["id"]
    # Nothing half-written: neither globex's key, its id-less claims nor `new` were claimed.
    assert resolved("globex", "new") == {}
    assert keys(stack.request("GET", "/customers")) == ["acme"]


def test_key_equal_to_another_customers_subject_key_is_409(stack: Stack) -> None:
    first = create(stack)
    body = conflict(
        stack.request("POST", "/customers", customer_body("acme-dept-a", usage_attribution=None)),
        "create-customer",
    )
    assert "[acme-dept-a]" in body["detail"]
    assert body["conflicting_entity_id"] == first["id"]


def test_subject_key_equal_to_another_customers_key_or_id_is_409(stack: Stack) -> None:
    first = create(stack)
    for subject in ("acme", first["id"]):
        body = conflict(
            stack.request(
                "POST", "/customers", customer_body("globex", usage_attribution={"subject_keys": [subject]})
            ),
            "create-customer",
        )
        assert f"[{subject}]" in body["detail"]
        assert body["conflicting_entity_id"] == first["id"]


def test_key_equal_to_another_customers_id_is_409(stack: Stack) -> None:
    first = create(stack)
    body = conflict(
        stack.request("POST", "/customers", customer_body(first["id"], usage_attribution=None)),
        "create-customer",
    )
    assert body["conflicting_entity_id"] == first["id"]


def test_update_claiming_a_taken_subject_is_409_and_changes_nothing(stack: Stack) -> None:
    acme = create(stack)
    globex = create(stack, "globex")
    change = customer_body(
        "globex", usage_attribution={"subject_keys": ["fresh", "acme-dept-a"]}, name="Renamed"
    )
    del change["key"]
    body = conflict(stack.request("PUT", f"/customers/{globex['id']}", change), "upsert-customer")
    assert body["conflicting_entity_id"] == acme["id"]
    assert stack.request("GET", f"/customers/{globex['id']}").json() == globex
    assert resolved("fresh", "acme-dept-a", "globex-dept-a") == {
        "acme-dept-a": acme["id"],
        "globex-dept-a": globex["id"],
    }
    assert attribution().resolve_subjects(["globex"])["globex"].name == "Globex Inc"


def test_the_transaction_itself_guards_claims(stack: Stack) -> None:
    """Without the service's pre-check (a lost race), the write is all-or-nothing."""
    acme = create(stack)
    repo = CustomerRepository(get_settings().config_table)
    now = repo.get(acme["id"]).created_at  # type: ignore[union-attr]
    racer = Customer(
        id="01KAAAAAAAAAAAAAAAAAAAAAAA",
        key="racer",
        name="Racer",
        subject_keys=["racer-1", "acme-dept-b"],
        created_at=now,
        updated_at=now,
    )
    with pytest.raises(TransactionConflict):
        repo.create(racer)
    assert repo.get(racer.id) is None
    assert resolved("racer", "racer-1", racer.id) == {}
    assert resolved("acme-dept-b") == {"acme-dept-b": acme["id"]}


def test_stale_update_is_rejected(stack: Stack) -> None:
    acme = create(stack)
    repo = CustomerRepository(get_settings().config_table)
    stale = repo.get(acme["id"])
    assert stale is not None
    resp = stack.request("PUT", "/customers/acme", {"name": "Fresh"})
    assert resp.status == 200, resp
    import dataclasses

    with pytest.raises(TransactionConflict):
        repo.update(
            stale, dataclasses.replace(stale, name="Stale", subject_keys=["z"], version=stale.version + 1)
        )
    assert resolved("z") == {}
    assert stack.request("GET", "/customers/acme").json()["name"] == "Fresh"


# -- get -----------------------------------------------------------------------------------------
def test_get_by_id_and_by_key(stack: Stack) -> None:
    created = create(stack)
    by_id = stack.request("GET", f"/customers/{created['id']}")
    by_key = stack.request("GET", "/customers/acme")
    assert contract.validate(by_id, "get-customer") == contract.validate(by_key, "get-customer") == created


def test_get_by_url_encoded_key(stack: Stack) -> None:
    created = create(stack, "acme corp/eu", usage_attribution=None, primary_email=None)
    assert stack.request("GET", "/customers/acme%20corp%2Feu").json() == created


def test_get_unknown_is_404(stack: Stack) -> None:
    create(stack)
    for ref in (UNKNOWN_ULID, "no-such-customer", "acme-dept-a"):  # a subject key is not a customer key
        resp = stack.request("GET", f"/customers/{ref}")
        body = problem(resp, 404)
        contract.validate(resp, "get-customer")
        assert ref in body["detail"]


# -- list ----------------------------------------------------------------------------------------
@pytest.fixture
def five(stack: Stack) -> list[dict[str, Any]]:
    specs = [
        ("echo", "Echo", ["e1"], "ops@echo.example"),
        ("alpha", "Alpha Corp", ["a1", "shared-a"], "billing@alpha.example"),
        ("delta", "delta labs", [], None),
        ("bravo", "Bravo Corp", ["b1"], "billing@bravo.example"),
        ("charlie", "Charlie", ["c1", "c2"], "finance@charlie.example"),
    ]
    return [
        create(stack, key, name=name, usage_attribution={"subject_keys": subs}, primary_email=email)
        for key, name, subs, email in specs
    ]


def test_list_defaults_sorted_by_name(stack: Stack, five: list[dict[str, Any]]) -> None:
    resp = stack.request("GET", "/customers")
    assert keys(resp) == ["alpha", "bravo", "charlie", "echo", "delta"]  # name ascending (case-sensitive)
    assert resp.json()["meta"] == {"page": {"number": 1, "size": 100, "total": 5}}
    assert resp.json()["data"][0] == five[1]


def test_list_pages(stack: Stack, five: list[dict[str, Any]]) -> None:
    first = stack.request("GET", "/customers?page[size]=2")
    assert keys(first) == ["alpha", "bravo"]
    assert first.json()["meta"]["page"] == {"number": 1, "size": 2, "total": 5}
    third = stack.request("GET", "/customers?page[size]=2&page[number]=3")
    assert keys(third) == ["delta"]
    assert keys(stack.request("GET", "/customers?page[size]=2&page[number]=4")) == []


LIST_FILTERS = [
    ("filter[key]=delta", ["delta"]),
    ("filter[key][eq]=charlie", ["charlie"]),
    ("filter[key][neq]=alpha", ["bravo", "charlie", "echo", "delta"]),
    ("filter[key][oeq]=alpha,echo", ["alpha", "echo"]),
    ("filter[name][contains]=corp", ["alpha", "bravo"]),
    ("filter[name][ocontains]=labs,echo", ["echo", "delta"]),
    ("filter[primary_email][contains]=billing@", ["alpha", "bravo"]),
    ("filter[primary_email][eq]=ops@echo.example", ["echo"]),
    ("filter[usage_attribution_subject_key]=c2", ["charlie"]),
    ("filter[usage_attribution_subject_key][oeq]=a1,b1", ["alpha", "bravo"]),
    ("filter[usage_attribution_subject_key][contains]=shared", ["alpha"]),
    ("filter[usage_attribution_subject_key][neq]=c1", ["alpha", "bravo", "echo", "delta"]),
    ("filter[plan_key]=pro", []),
    ("filter[plan_key][neq]=pro", ["alpha", "bravo", "charlie", "echo", "delta"]),
    (f"filter[billing_profile_id]={UNKNOWN_ULID}", []),
    (f"filter[billing_profile_id][neq]={UNKNOWN_ULID}", ["alpha", "bravo", "charlie", "echo", "delta"]),
    ("filter[key][neq]=alpha&filter[name][contains]=corp", ["bravo"]),
]


def test_list_filters(stack: Stack, five: list[dict[str, Any]], subtests: pytest.Subtests) -> None:
    for query, expected in LIST_FILTERS:
        with subtests.test(msg=query):
            resp = stack.request("GET", f"/customers?{query}")
            assert keys(resp) == expected
            assert resp.json()["meta"]["page"]["total"] == len(expected)


def test_list_sort(stack: Stack, five: list[dict[str, Any]], subtests: pytest.Subtests) -> None:
    for sort, expected in [
        ("name desc", ["delta", "echo", "charlie", "bravo", "alpha"]),
        ("created_at", ["echo", "alpha", "delta", "bravo", "charlie"]),
        ("created_at desc", ["charlie", "bravo", "delta", "alpha", "echo"]),
    ]:
        with subtests.test(msg=sort):
            assert keys(stack.request("GET", f"/customers?sort={sort}")) == expected
    resp = stack.request("GET", "/customers?sort=id desc")
    ids = [c["id"] for c in resp.json()["data"]]
    assert ids == sorted((c["id"] for c in five), reverse=True)


LIST_INVALID = [
    ("sort=key", "sort", "enum"),
    ("sort=name sideways", "sort", "invalid"),
    ("filter[colour]=x", "filter[colour]", "unknown_property"),
    ("filter[key][gt]=x", "filter[key][gt]", "enum"),
    ("filter[billing_profile_id]=nope", "filter[billing_profile_id][eq]", "matches_regex"),
    ("filter[billing_profile_id][contains]=x", "filter[billing_profile_id][contains]", "enum"),
    ("page[size]=0", "page[size]", "invalid"),
    ("page[number]=abc", "page[number]", "is_integer"),
]


def test_list_bad_params(stack: Stack, subtests: pytest.Subtests) -> None:
    for query, field, rule in LIST_INVALID:
        with subtests.test(msg=query):
            resp = stack.request("GET", f"/customers?{query}")
            [param] = problem(resp, 400)["invalid_parameters"]
            assert (param["field"], param["rule"], param["source"]) == (field, rule, "query")
            contract.validate(resp, "list-customers")


# -- update (PUT = upsert of the mutable fields) -------------------------------------------------
def test_update_replaces_mutable_fields(stack: Stack) -> None:
    created = create(stack)
    change = {
        "name": "Acme Renamed",
        "description": "new words",
        "labels": {"env": "prod"},
        "usage_attribution": {"subject_keys": ["acme-dept-b", "acme-dept-c"]},
        "primary_email": "ap@acme.example",
        "currency": "EUR",
        "billing_address": {"country": "FR", "city": "Paris"},
    }
    resp = stack.request("PUT", f"/customers/{created['id']}", change)
    assert resp.status == 200, resp
    body = contract.validate(resp, "upsert-customer")
    for name, value in change.items():
        assert body[name] == value
    for name in ("id", "key", "created_at"):
        assert body[name] == created[name]
    assert body["updated_at"] >= created["updated_at"]
    assert stack.request("GET", "/customers/acme").json() == body
    # Claims follow: dept-a released, dept-c claimed, every claim carries the new name.
    refs = attribution().resolve_subjects(
        ["acme-dept-a", "acme-dept-b", "acme-dept-c", "acme", created["id"]]
    )
    assert set(refs) == {"acme-dept-b", "acme-dept-c", "acme", created["id"]}
    assert {r.name for r in refs.values()} == {"Acme Renamed"}
    # ...and the released subject is free for another customer.
    other = create(stack, "globex", usage_attribution={"subject_keys": ["acme-dept-a"]})
    assert resolved("acme-dept-a") == {"acme-dept-a": other["id"]}


def test_update_omitted_fields_are_cleared(stack: Stack) -> None:
    created = create(stack)
    body = stack.request("PUT", "/customers/acme", {"name": "Only name"}).json()
    assert body == {
        "id": created["id"],
        "key": "acme",
        "name": "Only name",
        "usage_attribution": {"subject_keys": []},
        "created_at": created["created_at"],
        "updated_at": body["updated_at"],
    }
    assert resolved("acme-dept-a", "acme") == {"acme": created["id"]}


def test_update_swapping_every_subject_key_at_the_cap(stack: Stack) -> None:
    old = [f"old{i}" for i in range(MAX_SUBJECT_KEYS)]
    new = [f"new{i}" for i in range(MAX_SUBJECT_KEYS)]
    created = create(stack, usage_attribution={"subject_keys": old})
    resp = stack.request(
        "PUT", "/customers/acme", {"name": "Swapped", "usage_attribution": {"subject_keys": new}}
    )
    assert resp.status == 200, resp
    assert resolved(*old) == {}
    refs = attribution().resolve_subjects(new)
    assert len(refs) == MAX_SUBJECT_KEYS
    assert {(r.id, r.name) for r in refs.values()} == {(created["id"], "Swapped")}


UPDATE_INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "x", "key": "other"}, "key", "unknown_property"),
    ({"name": "x", "created_at": "2026-01-01T00:00:00Z"}, "created_at", "unknown_property"),
    ({"description": "no name"}, "name", "required"),
    ({"name": "x", "currency": "eur"}, "currency", "matches_regex"),
    (
        {"name": "x", "usage_attribution": {"subject_keys": [""]}},
        "usage_attribution.subject_keys[0]",
        "min_length",
    ),
]


def test_update_validation(stack: Stack, subtests: pytest.Subtests) -> None:
    created = create(stack)
    for change, field, rule in UPDATE_INVALID:
        with subtests.test(msg=field):
            resp = stack.request("PUT", f"/customers/{created['id']}", change)
            assert params(resp) == [(field, rule)]
            contract.validate(resp, "upsert-customer")
    assert stack.request("GET", f"/customers/{created['id']}").json() == created
    for ref in (UNKNOWN_ULID, "nobody"):
        resp = stack.request("PUT", f"/customers/{ref}", {"name": "x"})
        problem(resp, 404)
        contract.validate(resp, "upsert-customer")


# -- delete --------------------------------------------------------------------------------------
def test_delete_soft_deletes_and_releases_key_and_subjects(stack: Stack) -> None:
    created = create(stack)
    resp = stack.request("DELETE", "/customers/acme")
    assert resp.status == 204, resp
    assert resp.text == ""
    contract.validate(resp, "delete-customer")

    by_id = stack.request("GET", f"/customers/{created['id']}")
    body = contract.validate(by_id, "get-customer")
    assert body["deleted_at"] == body["updated_at"]
    assert {k: v for k, v in body.items() if k not in ("deleted_at", "updated_at")} == {
        k: v for k, v in created.items() if k != "updated_at"
    }
    problem(stack.request("GET", "/customers/acme"), 404)
    assert keys(stack.request("GET", "/customers")) == []
    assert resolved("acme", "acme-dept-a", "acme-dept-b", created["id"]) == {}
    assert attribution().get_ref(created["id"]) is None
    assert attribution().get_ref(created["id"], include_deleted=True) == CustomerRef(
        created["id"], "acme", "Acme Inc"
    )
    assert attribution().subjects_of([created["id"]]) == {}

    # Deleting again is a 404; updating a deleted customer is a 410.
    problem(stack.request("DELETE", f"/customers/{created['id']}"), 404)
    gone = stack.request("PUT", f"/customers/{created['id']}", {"name": "Back"})
    problem(gone, 410)
    contract.validate(gone, "upsert-customer")

    # The key and subjects are free again.
    again = create(stack)
    assert again["id"] != created["id"]
    assert stack.request("GET", "/customers/acme").json() == again
    assert resolved("acme", "acme-dept-a") == {"acme": again["id"], "acme-dept-a": again["id"]}


def test_delete_unknown_is_404(stack: Stack) -> None:
    for ref in (UNKNOWN_ULID, "nobody"):
        resp = stack.request("DELETE", f"/customers/{ref}")
        problem(resp, 404)
        contract.validate(resp, "delete-customer")


# -- roles ---------------------------------------------------------------------------------------
def test_viewer_reads_but_cannot_write(stack: Stack) -> None:
    created = create(stack)
    assert stack.request("GET", "/customers", token=VIEWER).status == 200
    assert stack.request("GET", f"/customers/{created['id']}", token=VIEWER).status == 200
    for method, path, body in (
        ("POST", "/customers", customer_body("globex")),
        ("PUT", "/customers/acme", {"name": "x"}),
        ("DELETE", "/customers/acme", None),
    ):
        problem(stack.request(method, path, body, token=VIEWER), 403)
    assert stack.request("GET", "/customers", token=None).status == 401


# -- attribution ---------------------------------------------------------------------------------
def test_resolve_subjects_by_subject_key_key_and_id(stack: Stack) -> None:
    acme = create(stack)
    globex = create(stack, "globex", usage_attribution=None)
    refs = attribution().resolve_subjects(
        ["acme-dept-a", "acme", acme["id"], "globex", globex["id"], "nobody", "acme", "", "x" * 5000]
    )
    acme_ref = CustomerRef(acme["id"], "acme", "Acme Inc")
    globex_ref = CustomerRef(globex["id"], "globex", "Globex Inc")
    assert refs == {
        "acme-dept-a": acme_ref,
        "acme": acme_ref,
        acme["id"]: acme_ref,
        "globex": globex_ref,
        globex["id"]: globex_ref,
    }
    assert attribution().resolve_subjects([]) == {}


def test_resolve_many_subjects_spans_batches(stack: Stack) -> None:
    customers = [
        create(stack, f"c{i}", usage_attribution={"subject_keys": [f"c{i}-{j}" for j in range(30)]})
        for i in range(5)
    ]
    subjects = [f"c{i}-{j}" for i in range(5) for j in range(30)] + [f"unknown{i}" for i in range(100)]
    refs = attribution().resolve_subjects(subjects)
    assert len(refs) == 150
    assert refs["c3-29"].id == customers[3]["id"]


def test_subjects_of_and_get_ref(stack: Stack) -> None:
    acme = create(stack, usage_attribution={"subject_keys": ["u1", "acme", "u2"]})
    globex = create(stack, "globex", usage_attribution=None)
    result = attribution().subjects_of([acme["id"], globex["id"], UNKNOWN_ULID, "acme", acme["id"]])
    assert result == {acme["id"]: ["u1", "acme", "u2", acme["id"]], globex["id"]: ["globex", globex["id"]]}
    assert attribution().subjects_of([]) == {}
    assert attribution().get_ref(globex["id"]) == CustomerRef(globex["id"], "globex", "Globex Inc")
    assert attribution().get_ref("globex") is None  # ids only
    assert attribution().get_ref(UNKNOWN_ULID) is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("filter[primary_email]=a@x.example&filter[primary_email]=b@x.example", "filter[primary_email]"),
        ("page[size]=5&page[size]=50", "page[size]"),
        ("sort=name&sort=created_at", "sort"),
    ],
)
def test_a_query_parameter_given_twice_is_400_naming_it(stack: Stack, query: str, field: str) -> None:
    """API Gateway keeps only the last of repeated values in `queryStringParameters`: answering with
    one of two contradicting filters would be a guess (found by the contract fuzz)."""
    resp = stack.request("GET", f"/customers?{query}")
    [param] = problem(resp, 400)["invalid_parameters"]
    assert (param["field"], param["rule"], param["source"]) == (field, "is_string", "query")  # one value
