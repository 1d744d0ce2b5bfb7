"""Docker-free Lambda packaging: the pip command line, the source copy, pruning, asset resolution."""

from __future__ import annotations

import marshal
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra import packaging, settings
from infra.constructs.functions import ARCHITECTURE, RUNTIME
from infra.imports import canonical
from infra.stack import LambdaAssetMissingError, resolve_lambda_asset


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_pip_command_targets_lambda_platform(tmp_path: Path) -> None:
    cmd = packaging.pip_install_command(tmp_path / "out", "reqs.txt", ["orjson", "tzdata"], python="py")
    assert cmd[:4] == ["py", "-m", "pip", "install"]
    assert _option(cmd, "--target") == str(tmp_path / "out")
    assert _option(cmd, "--platform") == "manylinux2014_x86_64"
    assert _option(cmd, "--implementation") == "cp"
    assert _option(cmd, "--python-version") == "3.12"
    assert "--only-binary=:all:" in cmd
    assert "--no-compile" in cmd
    assert _option(cmd, "-c") == "reqs.txt"  # the pins, as constraints: only the named packages install
    assert cmd[-2:] == ["orjson", "tzdata"]


def test_packaging_matches_lambda_runtime() -> None:
    # Wheels built for one interpreter/arch must not be deployed on another.
    assert RUNTIME.name == f"python{settings.LAMBDA_PYTHON_VERSION}"
    assert ARCHITECTURE.name == "x86_64" and settings.LAMBDA_PLATFORM.endswith("_x86_64")


def _pinned() -> dict[str, str]:
    lines = [ln.split("#")[0].strip() for ln in settings.LAMBDA_REQUIREMENTS.read_text().splitlines()]
    return {canonical(ln.split("==")[0]): ln for ln in lines if ln}


def test_requirements_pin_exactly_the_vendored_deps_and_not_boto3() -> None:
    pins = _pinned()
    assert all("==" in line for line in pins.values()), "every vendored distribution is pinned exactly"
    declared = {canonical(d) for deps in settings.LAMBDA_DEPENDENCIES.values() for d in deps}
    assert set(pins) == declared  # nothing installs unpinned, no pin is left over
    assert not set(pins) & {canonical(d) for d in settings.LAMBDA_RUNTIME_PROVIDED}


def _fake_repo(root: Path) -> Path:
    for pkg in ("functions", "shared", "functions/aggregate", "functions/api"):
        (root / pkg / "sub" / "__pycache__").mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
        (root / pkg / "sub" / "mod.py").write_text("X = 1\n")
        (root / pkg / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    return root


def test_copy_sources_takes_shared_and_the_functions_own_package(tmp_path: Path) -> None:
    root = _fake_repo(tmp_path / "repo")
    out = tmp_path / "out"
    packaging.copy_sources(out, "aggregate", root)
    assert (out / "functions" / "aggregate" / "sub" / "mod.py").is_file()
    assert (out / "functions" / "__init__.py").is_file()
    assert not (out / "functions" / "api").exists() and not (out / "functions" / "sub").exists()
    assert (out / "shared" / "sub" / "mod.py").is_file()
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("*.pyc"))


def _fake_wheel(target: Path, dist: str, version: str, files: dict[str, str]) -> None:
    info = target / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    for rel, text in files.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text)
    rows = [*files, f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{r},,\n" for r in rows))


def test_build_installs_the_functions_deps_prunes_the_runtimes_and_copies_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    compiled: list[list[str]] = []

    def fake_run(cmd: list[str], check: bool, **_: object) -> subprocess.CompletedProcess[str]:
        if "compileall" in cmd:
            compiled.append(cmd)
            return subprocess.CompletedProcess(cmd, 0)
        calls.append(cmd)
        target = Path(_option(cmd, "--target"))
        (target / "bin").mkdir()  # console scripts get dropped
        _fake_wheel(target, "orjson", "3.13.0", {"orjson/__init__.py": ""})
        # aws-xray-sdk depends on botocore; python-dateutil brings six: the runtime has both.
        _fake_wheel(target, "botocore", "1.44.8", {"botocore/__init__.py": "", "botocore/data/x.json": "{}"})
        _fake_wheel(target, "python_dateutil", "2.9.0", {"dateutil/__init__.py": ""})
        _fake_wheel(target, "six", "1.17.0", {"six.py": ""})
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(packaging.subprocess, "run", fake_run)
    monkeypatch.setattr(packaging, "runtime_python", lambda version: f"/usr/bin/python{version}")
    root = _fake_repo(tmp_path / "repo")
    out = tmp_path / "asset"
    (out / "aggregate" / "stale").mkdir(parents=True)
    (out / "old-single-asset").mkdir()
    assert packaging.build(out, ["aggregate"], root=root) == {"aggregate": (out / "aggregate").resolve()}
    assert len(calls) == 1 and "--only-binary=:all:" in calls[0]
    assert calls[0][-len(settings.LAMBDA_DEPENDENCIES["aggregate"]) :] == list(
        settings.LAMBDA_DEPENDENCIES["aggregate"]
    )
    assert sorted(p.name for p in (out / "aggregate").iterdir()) == [
        "functions",
        "orjson",
        "orjson-3.13.0.dist-info",
        "shared",
    ]
    assert (out / "old-single-asset").exists()  # a partial build leaves other directories alone
    # Bytecode for the runtime's Python (/var/task is read-only: nothing is compiled at cold start).
    assert compiled == [packaging.compile_command((out / "aggregate").resolve(), "/usr/bin/python3.12")]


def test_compiled_asset_carries_unchecked_bytecode_for_var_task(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("X = 1\n")
    python = sys.executable
    cmd = packaging.compile_command(tmp_path, python)
    assert cmd[cmd.index("--invalidation-mode") + 1] == "unchecked-hash"
    subprocess.run(cmd, check=True, capture_output=True)
    tag = sys.implementation.cache_tag
    pyc = (tmp_path / "pkg" / "__pycache__" / f"__init__.{tag}.pyc").read_bytes()
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, not checked against the source
    code = marshal.loads(pyc[16:])
    assert code.co_filename == f"{packaging.LAMBDA_TASK_ROOT}/pkg/__init__.py"


def test_runtime_python_is_of_the_runtimes_version() -> None:
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert packaging.runtime_python(mine) == sys.executable
    assert packaging.runtime_python("2.0") is None


def test_full_build_removes_what_is_no_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    monkeypatch.setattr(packaging, "build_function", lambda name, out, **_: built.append(name) or out)
    (tmp_path / "functions").mkdir()  # the single asset of before
    (tmp_path / "aggregate").mkdir()
    packaging.build(tmp_path)
    assert built == list(settings.LAMBDA_DEPENDENCIES)
    assert [p.name for p in tmp_path.iterdir()] == ["aggregate"]


def test_build_refuses_an_unknown_function(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        packaging.build(tmp_path, ["nope"])


def test_cli_prints_one_command_per_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert packaging.main(["--print-command", "--out", "x"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(settings.LAMBDA_DEPENDENCIES)
    assert all("--platform manylinux2014_x86_64" in line for line in lines)
    aggregate = next(line for line in lines if "--target x/aggregate " in line)
    assert "stripe" not in aggregate and "pydantic" not in aggregate


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
