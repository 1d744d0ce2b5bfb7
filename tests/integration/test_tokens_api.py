"""API tokens: admin-only management, the secret shown once, immediate revocation, no lock-out."""

from __future__ import annotations

import pytest

from tests.support.harness import ADMIN, INGESTER, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("stack")


def _create(stack: Stack, name: str = "ci", role: str = "viewer", token: str = ADMIN) -> dict:
    resp = stack.request("POST", "/tokens", {"name": name, "role": role}, token=token)
    assert resp.status == 201, resp
    return resp.json()


def test_create_shows_the_secret_once_and_it_works_with_its_role(stack: Stack) -> None:
    created = _create(stack, "dashboards", "viewer")
    raw = created["token"]
    assert raw.startswith("mlt_viewer_") and len(raw) >= len("mlt_viewer_") + 43  # 256 bits, url-safe
    assert created["role"] == "viewer" and created["name"] == "dashboards"
    assert created["hint"] == raw[: len("mlt_viewer_") + 4] + "…"
    assert stack.request("GET", "/meters", token=raw).status == 200
    assert stack.request("POST", "/meters", {"key": "x"}, token=raw).status == 403

    got = stack.request("GET", f"/tokens/{created['id']}").json()
    assert "token" not in got and raw not in str(got)
    listed = stack.request("GET", "/tokens").json()
    assert raw not in str(listed)
    assert created["id"] in [t["id"] for t in listed["data"]]


def test_ingest_token_can_only_ingest(stack: Stack) -> None:
    raw = _create(stack, "edge", "ingest")["token"]
    event = {"specversion": "1.0", "id": "e1", "source": "s", "type": "t", "subject": "c1"}
    assert stack.ingest(event, token=raw).status == 202
    assert stack.request("GET", "/meters", token=raw).status == 403


def test_list_is_paged_in_the_contract_style(stack: Stack) -> None:
    for i in range(3):
        _create(stack, f"t{i}")
    page = stack.request("GET", "/tokens?page[size]=2&page[number]=2").json()
    # the harness registers 3 tokens; 3 more here
    assert page["meta"]["page"] == {"number": 2, "size": 2, "total": 6}
    assert len(page["data"]) == 2
    bad = stack.request("GET", "/tokens?page[size]=0")
    assert bad.status == 400 and bad.json()["invalid_parameters"][0]["field"] == "page[size]"


@pytest.mark.parametrize("caller", [VIEWER, INGESTER])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/tokens", None),
        ("POST", "/tokens", {"name": "x", "role": "admin"}),
        ("DELETE", "/tokens/x", None),
    ],
)
def test_only_admins_manage_tokens(
    stack: Stack, caller: str, method: str, path: str, body: dict | None
) -> None:
    resp = stack.request(method, path, body, token=caller)
    assert resp.status == 403, resp
    assert resp.headers["content-type"] == "application/problem+json"


def test_revoked_token_is_rejected_on_the_next_request(stack: Stack) -> None:
    created = _create(stack, "temp", "admin")
    assert stack.request("GET", "/meters", token=created["token"]).status == 200
    assert stack.request("DELETE", f"/tokens/{created['id']}").status == 204
    assert stack.request("GET", "/meters", token=created["token"]).status == 401
    assert stack.request("GET", f"/tokens/{created['id']}").status == 404
    assert stack.request("DELETE", f"/tokens/{created['id']}").status == 404


def test_the_last_admin_token_cannot_be_revoked(stack: Stack) -> None:
    second = _create(stack, "second-admin", "admin")
    # revoking itself is fine while another admin remains
    assert stack.request("DELETE", f"/tokens/{second['id']}", token=second["token"]).status == 204
    harness_admin = next(t for t in stack.request("GET", "/tokens").json()["data"] if t["role"] == "admin")
    resp = stack.request("DELETE", f"/tokens/{harness_admin['id']}")
    assert resp.status == 409, resp
    assert resp.json()["conflicting_entity_id"] == harness_admin["id"]
    assert stack.request("GET", "/meters").status == 200  # still works


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"role": "viewer"}, "name", "required"),
        ({"name": "", "role": "viewer"}, "name", "min_length"),
        ({"name": "x" * 257, "role": "viewer"}, "name", "max_length"),
        ({"name": "x"}, "role", "required"),
        ({"name": "x", "role": "owner"}, "role", "enum"),
        ({"name": "x", "role": "viewer", "scopes": []}, "scopes", "unknown_property"),
    ],
)
def test_invalid_create_names_the_field(stack: Stack, body: dict, field: str, rule: str) -> None:
    resp = stack.request("POST", "/tokens", body)
    assert resp.status == 400, resp
    assert resp.headers["content-type"] == "application/problem+json"
    param = resp.json()["invalid_parameters"][0]
    assert (param["field"], param["rule"]) == (field, rule)
    if rule == "enum":
        assert set(param["choices"]) == {"admin", "viewer", "ingest"}
    assert stack.request("GET", "/tokens").json()["meta"]["page"]["total"] == 3  # nothing written


def test_unknown_or_malformed_id_is_404(stack: Stack) -> None:
    assert stack.request("GET", "/tokens/not-a-ulid").status == 404
    assert stack.request("GET", "/tokens/01JZ0000000000000000000000").status == 404
