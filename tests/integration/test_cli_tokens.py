"""`meterline tokens ...` against the in-process API, and `meterline bootstrap-admin` on moto."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from meterline_cli import main as cli
from shared.auth.store import TokenStore
from shared.auth.tokens import token_key
from tests.support.harness import ADMIN, VIEWER, Stack

runner = CliRunner()
URL = "https://meterline.test"


@pytest.fixture
def api(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Route the CLI's HTTP calls into the in-process API function."""

    def send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, str]:
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path.removeprefix("/v3/openmeter") + (f"?{parsed.query}" if parsed.query else "")
        token = headers["Authorization"].removeprefix("Bearer ")
        resp = stack.request(method, path, body.decode() if body else None, token=token)
        return resp.status, resp.text

    monkeypatch.setattr(cli, "transport", send)
    monkeypatch.delenv("METERLINE_URL", raising=False)
    monkeypatch.delenv("METERLINE_TOKEN", raising=False)
    return stack


def _run(*args: str, token: str = ADMIN) -> Any:
    return runner.invoke(cli.app, [*args, "--url", URL, "--token", token])


def test_create_list_revoke_round_trip(api: Stack) -> None:
    created = _run("tokens", "create", "--name", "grafana", "--role", "viewer")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("mlt_viewer_")
    assert "not shown again" in created.stderr
    assert api.request("GET", "/meters", token=secret).status == 200

    listed = _run("tokens", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert secret not in listed.stdout
    grafana = next(r for r in rows if r["name"] == "grafana")

    revoked = _run("tokens", "revoke", grafana["id"])
    assert revoked.exit_code == 0, revoked.output
    assert api.request("GET", "/meters", token=secret).status == 401


def test_errors_are_reported_with_the_api_detail(api: Stack) -> None:
    bad_role = _run("tokens", "create", "--name", "x", "--role", "owner")
    assert bad_role.exit_code == 1 and "HTTP 400" in bad_role.stderr and "role" in bad_role.stderr
    forbidden = _run("tokens", "list", token=VIEWER)
    assert forbidden.exit_code == 1 and "HTTP 403" in forbidden.stderr


def test_url_and_token_come_from_the_env_file(api: Stack, tmp_path: Any) -> None:
    env_file = tmp_path / "meterline.env"
    env_file.write_text(f"METERLINE_URL={URL}\nMETERLINE_TOKEN={ADMIN}\n")
    result = runner.invoke(cli.app, ["tokens", "list", "--json", "--env-file", str(env_file)])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(cli.app, ["tokens", "list", "--env-file", str(tmp_path / "none.env")])
    assert missing.exit_code == 1 and "METERLINE_URL" in missing.stderr


_TEMPLATE = {
    "Resources": {
        "ConfigTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            },
        }
    }
}


def test_bootstrap_admin_finds_the_config_table_through_the_stack_and_refuses_twice(stack: Stack) -> None:
    cfn = boto3.session.Session().client("cloudformation")
    cfn.create_stack(StackName="meterline-prod", TemplateBody=json.dumps(_TEMPLATE))
    table = cfn.describe_stack_resource(StackName="meterline-prod", LogicalResourceId="ConfigTable")[
        "StackResourceDetail"
    ]["PhysicalResourceId"]

    first = runner.invoke(cli.app, ["bootstrap-admin", "--stack-name", "meterline-prod"])
    assert first.exit_code == 0, first.output
    raw = first.stdout.strip()
    assert raw.startswith("mlt_admin_")
    ddb = boto3.session.Session().client("dynamodb")
    item = ddb.get_item(TableName=table, Key=token_key(raw))["Item"]
    assert item["role"]["S"] == "admin" and raw not in json.dumps(item)  # only the hash is stored
    assert TokenStore(table, client=ddb).admin_count() == 1

    again = runner.invoke(cli.app, ["bootstrap-admin", "--stack-name", "meterline-prod"])
    assert again.exit_code == 1 and "already exist" in again.stderr
    forced = runner.invoke(cli.app, ["bootstrap-admin", "--stack-name", "meterline-prod", "--force"])
    assert forced.exit_code == 0, forced.output
    assert TokenStore(table, client=ddb).admin_count() == 2


def test_bootstrapped_admin_token_works_against_the_api(stack: Stack) -> None:
    table = stack.provisioned.env["CONFIG_TABLE"]
    result = runner.invoke(cli.app, ["bootstrap-admin", "--config-table", table, "--force"])
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip()
    assert stack.request("GET", "/tokens", token=raw).status == 200
    names = [t["name"] for t in stack.request("GET", "/tokens", token=raw).json()["data"]]
    assert "bootstrap-admin" in names
