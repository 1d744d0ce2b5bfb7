"""Regressions found by contract fuzzing: each failure class, as the smallest request that showed it."""

from __future__ import annotations

import pytest

from tests.integration import conftest as integration
from tests.support import contract
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack


@pytest.mark.parametrize(
    ("path", "operation_id", "field"),
    [
        ("/meters?page[number][x]=2", "list-meters", "page[number]"),
        ("/meters?page[size][x]=2", "list-meters", "page[size]"),
        ("/customers?page[size][x][y]=2", "list-customers", "page[size]"),
        ("/features?page[number][]=2", "list-features", "page[number]"),
    ],
)
def test_nested_page_parameters_are_bad_requests(
    stack: Stack, path: str, operation_id: str, field: str
) -> None:
    resp = stack.request("GET", path)
    assert resp.status == 400, resp
    body = contract.validate(resp, operation_id)
    assert body["invalid_parameters"][0]["field"] == field


@pytest.mark.parametrize("path", ["/meters", "/customers", "/features"])
def test_sort_with_a_plus_for_the_space(stack: Stack, path: str) -> None:
    # API Gateway passes '+' through undecoded; `sort=created_at desc` arrives as `created_at+desc`.
    resp = stack.request("GET", f"{path}?sort=created_at+desc")
    assert resp.status == 200, resp


def test_several_operators_on_one_string_filter_all_apply(stack: Stack) -> None:
    for key in ("tokens", "tokens_in", "requests"):
        body = {"key": key, "name": key, "aggregation": "count", "event_type": "e"}
        assert stack.request("POST", "/meters", body).status == 201
    resp = stack.request("GET", "/meters?filter[key][contains]=tokens&filter[key][neq]=tokens")
    assert resp.status == 200, resp
    assert [m["key"] for m in contract.validate(resp, "list-meters")["data"]] == ["tokens_in"]


@pytest.mark.parametrize(
    ("method", "path", "operation_id"),
    [
        ("DELETE", "/meters", "list-meters"),
        ("PATCH", "/customers", "list-customers"),
        ("PUT", "/features", "list-features"),
    ],
)
def test_a_known_path_with_an_unrouted_method_is_405(
    stack: Stack, method: str, path: str, operation_id: str
) -> None:
    resp = stack.request(method, path, {})
    assert resp.status == 405, resp
    assert resp.headers["content-type"] == "application/problem+json"
    contract.validate_component(resp.json(), "BaseError")
    assert "GET" in resp.headers["allow"]


@pytest.mark.parametrize(
    ("path", "body", "operation_id", "field"),
    [
        ("/customers", {"key": "c", "name": "C", "primary_email": None}, "create-customer", "primary_email"),
        ("/features", {"key": "f", "name": "F", "meter": None}, "create-feature", "meter"),
        ("/customers", {"key": "c", "name": "C", "labels": None}, "create-customer", "labels"),
    ],
)
def test_null_for_a_non_nullable_field_is_rejected(
    stack: Stack, path: str, body: dict, operation_id: str, field: str
) -> None:
    resp = stack.request("POST", path, body)
    assert resp.status == 400, resp
    assert contract.validate(resp, operation_id)["invalid_parameters"][0]["field"] == field


def test_null_clears_the_unit_cost_of_a_feature(stack: Stack) -> None:
    body = {"key": "f", "name": "F", "unit_cost": {"type": "manual", "amount": "0.1"}}
    feature = stack.request("POST", "/features", body).json()
    resp = stack.request("PATCH", f"/features/{feature['id']}", {"unit_cost": None})
    assert resp.status == 200, resp
    assert "unit_cost" not in contract.validate(resp, "update-feature")


# -- hostile bodies --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "raw", "operation_id", "listing"),
    [
        # `dimensions` given `a` twice: one mapping was silently dropped.
        (
            "/meters",
            '{"key":"m","name":"M","aggregation":"sum","event_type":"e","value_property":"$.v",'
            '"dimensions":{"a":"$.a","a":"$.b"}}',
            "create-meter",
            "/meters",
        ),
        # `key` twice: the customer was created under the last one, whatever a proxy or log saw first.
        ("/customers", '{"key":"first","name":"C","key":"second"}', "create-customer", "/customers"),
    ],
)
def test_a_member_given_twice_in_one_object_is_a_bad_request_and_writes_nothing(
    stack: Stack, path: str, raw: str, operation_id: str, listing: str
) -> None:
    resp = stack.request("POST", path, raw)
    assert resp.status == 400, resp
    param = contract.validate(resp, operation_id)["invalid_parameters"][0]
    assert param["field"] == "body" and "twice" in param["reason"]
    assert stack.request("GET", listing).json()["data"] == []


@pytest.mark.parametrize("path", ["/notification/channels", "/customers"])
def test_a_body_nested_too_deeply_is_a_bad_request(stack: Stack, path: str) -> None:
    # 1,000 levels pass orjson's limit (1,024) but not Python's json (the notification routes parse
    # numbers as Decimal with it): a RecursionError, a 500.
    raw = '{"type":"webhook","name":"x","url":"https://a.example","labels":' + "[" * 1000 + "]" * 1000 + "}"
    resp = stack.request("POST", path, raw)
    assert resp.status == 400, resp
    assert resp.json()["invalid_parameters"][0]["field"] == "body"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_sent_as_another_media_type_is_415_and_writes_nothing(stack: Stack, content_type: str) -> None:
    # Every request body the contract declares is application/json: anything else was parsed anyway.
    for path in ("/customers", "/notification/channels"):
        body = {"key": "c", "name": "C"} if path == "/customers" else {"type": "sns", "name": "x"}
        resp = stack.request("POST", path, body, content_type=content_type)
        assert resp.status == 415, resp
        assert resp.headers["content-type"] == "application/problem+json"
        contract.validate_component(resp.json(), "BaseError")
        assert stack.request("GET", path).json()["data"] == []


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"]
)
def test_json_media_types_with_parameters_or_a_json_suffix_are_taken(stack: Stack, content_type: str) -> None:
    resp = stack.request("POST", "/customers", {"key": "c", "name": "C"}, content_type=content_type)
    assert resp.status == 201, resp
