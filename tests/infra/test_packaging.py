"""Docker-free Lambda packaging: the pip command line, the source copy, asset resolution."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra import packaging, settings
from infra.constructs.functions import ARCHITECTURE, RUNTIME
from infra.stack import LambdaAssetMissingError, resolve_lambda_asset


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_pip_command_targets_lambda_platform(tmp_path: Path) -> None:
    cmd = packaging.pip_install_command(tmp_path / "out", "reqs.txt", python="py")
    assert cmd[:4] == ["py", "-m", "pip", "install"]
    assert _option(cmd, "--target") == str(tmp_path / "out")
    assert _option(cmd, "--platform") == "manylinux2014_x86_64"
    assert _option(cmd, "--implementation") == "cp"
    assert _option(cmd, "--python-version") == "3.12"
    assert "--only-binary=:all:" in cmd
    assert "--no-compile" in cmd
    assert _option(cmd, "-r") == "reqs.txt"


def test_packaging_matches_lambda_runtime() -> None:
    # Wheels built for one interpreter/arch must not be deployed on another.
    assert RUNTIME.name == f"python{settings.LAMBDA_PYTHON_VERSION}"
    assert ARCHITECTURE.name == "x86_64" and settings.LAMBDA_PLATFORM.endswith("_x86_64")


def test_requirements_vendor_the_runtime_deps_but_not_boto3() -> None:
    lines = [ln.split("#")[0].strip() for ln in settings.LAMBDA_REQUIREMENTS.read_text().splitlines()]
    names = {re.split(r"[=<>\[ ;]", ln, maxsplit=1)[0].lower() for ln in lines if ln}
    assert {"aws-lambda-powertools", "pydantic", "orjson", "python-ulid", "jsonpath-ng", "stripe"} <= names
    assert not names & {"boto3", "botocore", "s3transfer"}


def _fake_repo(root: Path) -> Path:
    for pkg in ("functions", "shared"):
        (root / pkg / "sub" / "__pycache__").mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
        (root / pkg / "sub" / "mod.py").write_text("X = 1\n")
        (root / pkg / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    return root


def test_copy_sources_skips_pycache(tmp_path: Path) -> None:
    root = _fake_repo(tmp_path / "repo")
    out = tmp_path / "out"
    packaging.copy_sources(out, root)
    assert (out / "functions" / "sub" / "mod.py").is_file()
    assert (out / "shared" / "__init__.py").is_file()
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("*.pyc"))


def test_build_runs_pip_then_copies_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        target = Path(_option(cmd, "--target"))
        (target / "bin").mkdir()  # console scripts get dropped
        (target / "orjson").mkdir()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(packaging.subprocess, "run", fake_run)
    root = _fake_repo(tmp_path / "repo")
    out = tmp_path / "asset"
    (out / "stale").mkdir(parents=True)
    assert packaging.build(out, root / "reqs.txt", root=root) == out.resolve()
    assert len(calls) == 1 and "--only-binary=:all:" in calls[0]
    assert sorted(p.name for p in out.iterdir()) == ["functions", "orjson", "shared"]


def test_build_refuses_a_vendored_boto3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        (Path(_option(cmd, "--target")) / "botocore").mkdir()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(packaging.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="botocore"):
        packaging.build(tmp_path / "asset", tmp_path / "reqs.txt", root=_fake_repo(tmp_path / "repo"))


def test_cli_prints_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert packaging.main(["--print-command", "--out", "x"]) == 0
    assert "--platform manylinux2014_x86_64" in capsys.readouterr().out


def test_missing_asset_fails_with_build_hint(tmp_path: Path) -> None:
    with pytest.raises(LambdaAssetMissingError, match=r"python -m infra\.packaging"):
        resolve_lambda_asset(cdk.App(), tmp_path / "nope")


def test_asset_location_from_env_and_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_asset: Path
) -> None:
    monkeypatch.setenv(settings.LAMBDA_ASSET_ENV_VAR, str(tiny_asset))
    assert resolve_lambda_asset(cdk.App()) == tiny_asset
    app = cdk.App(context={settings.LAMBDA_ASSET_CONTEXT_KEY: str(tmp_path / "nope")})
    with pytest.raises(LambdaAssetMissingError):
        resolve_lambda_asset(app)  # context beats the env var
