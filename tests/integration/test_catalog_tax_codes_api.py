"""Tax codes (/tax-codes) and the organisation defaults (/defaults/tax-codes)."""

from __future__ import annotations

import pytest

from shared.catalog.service import SYSTEM_TAX_CODES, system_tax_code_id
from tests.integration import conftest as integration
from tests.support.catalog import UNKNOWN, check, fields, problem
from tests.support.contract import fast_boto3, full_headers  # noqa: F401  (fixtures)
from tests.support.harness import Stack

pytestmark = pytest.mark.usefixtures("fast_boto3", "full_headers")
_moto = integration._moto
stack = integration.stack

CUSTOM = {
    "key": "vat_reduced",
    "name": "Reduced VAT",
    "app_mappings": [{"app_type": "stripe", "tax_code": "txcd_10103001"}],
}


def test_the_stripe_codes_are_provisioned_read_only_with_defaults(stack: Stack) -> None:
    listed = check(stack.request("GET", "/tax-codes"), "list-tax-codes", 200)
    assert sorted(t["key"] for t in listed["data"]) == sorted(c.stripe_code for c in SYSTEM_TAX_CODES)
    saas = next(t for t in listed["data"] if t["key"] == "txcd_10103001")
    assert saas["app_mappings"] == [{"app_type": "stripe", "tax_code": "txcd_10103001"}]
    assert saas["id"] == system_tax_code_id("txcd_10103001")  # the same id in every deployment
    defaults = check(stack.request("GET", "/defaults/tax-codes"), "get-organization-default-tax-codes", 200)
    general = system_tax_code_id("txcd_10000000")
    assert defaults["invoicing_tax_code"] == defaults["credit_grant_tax_code"] == {"id": general}
    update = {"name": "Mine", "app_mappings": []}
    assert fields(stack.request("PUT", f"/tax-codes/{saas['id']}", update)) == [("taxCodeId", "invalid")]
    assert fields(stack.request("DELETE", f"/tax-codes/{saas['id']}")) == [("taxCodeId", "invalid")]


def test_custom_codes_crud_and_key_uniqueness(stack: Stack) -> None:
    code = check(stack.request("POST", "/tax-codes", CUSTOM), "create-tax-code", 201)
    assert problem(stack.request("POST", "/tax-codes", CUSTOM), 409)["conflicting_entity_id"] == code["id"]
    update = {"name": "VAT 7%", "app_mappings": [{"app_type": "external_invoicing", "tax_code": "VAT7"}]}
    updated = check(stack.request("PUT", f"/tax-codes/{code['id']}", update), "upsert-tax-code", 200)
    assert (updated["name"], updated["key"]) == ("VAT 7%", "vat_reduced")
    assert check(stack.request("GET", f"/tax-codes/{code['id']}"), "get-tax-code", 200) == updated
    assert stack.request("DELETE", f"/tax-codes/{code['id']}").status == 204
    gone = check(stack.request("GET", f"/tax-codes/{code['id']}"), "get-tax-code", 200)
    assert "deleted_at" in gone
    problem(stack.request("PUT", f"/tax-codes/{code['id']}", update), 410)
    problem(stack.request("DELETE", f"/tax-codes/{code['id']}"), 404)
    live = check(stack.request("GET", "/tax-codes"), "list-tax-codes", 200)["data"]
    assert code["id"] not in [t["id"] for t in live]
    every = check(stack.request("GET", "/tax-codes?include_deleted=true"), "list-tax-codes", 200)["data"]
    assert code["id"] in [t["id"] for t in every]
    # The key is free again.
    check(stack.request("POST", "/tax-codes", CUSTOM), "create-tax-code", 201)


def test_bad_tax_code_input(stack: Stack) -> None:
    twice = {**CUSTOM, "app_mappings": CUSTOM["app_mappings"] * 2}
    assert fields(stack.request("POST", "/tax-codes", twice)) == [("app_mappings[1].app_type", "invalid")]
    bad_app = {**CUSTOM, "app_mappings": [{"app_type": "paypal", "tax_code": "x"}]}
    assert fields(stack.request("POST", "/tax-codes", bad_app)) == [("app_mappings[0].app_type", "enum")]
    assert fields(stack.request("GET", "/tax-codes?include_deleted=maybe")) == [
        ("include_deleted", "is_boolean")
    ]
    problem(stack.request("GET", f"/tax-codes/{UNKNOWN}"), 404)


def test_one_default_per_category_and_a_default_cannot_be_deleted(stack: Stack) -> None:
    code = check(stack.request("POST", "/tax-codes", CUSTOM), "create-tax-code", 201)
    resp = stack.request("PUT", "/defaults/tax-codes", {"credit_grant_tax_code": {"id": code["id"]}})
    defaults = check(resp, "update-organization-default-tax-codes", 200)
    assert defaults["credit_grant_tax_code"] == {"id": code["id"]}
    assert defaults["invoicing_tax_code"] == {"id": system_tax_code_id("txcd_10000000")}
    assert fields(stack.request("DELETE", f"/tax-codes/{code['id']}")) == [("taxCodeId", "invalid")]
    unknown = stack.request("PUT", "/defaults/tax-codes", {"invoicing_tax_code": {"id": UNKNOWN}})
    assert fields(unknown) == [("invoicing_tax_code.id", "invalid")]
    nontaxable = system_tax_code_id("txcd_00000000")
    stack.request("PUT", "/defaults/tax-codes", {"credit_grant_tax_code": {"id": nontaxable}})
    assert stack.request("DELETE", f"/tax-codes/{code['id']}").status == 204
