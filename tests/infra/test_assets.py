"""Each function's asset carries what its code imports, and nothing else (infra/imports.py).

The static analysis (every import statement reachable from the handler, lazy ones included) must
agree with `infra.settings.LAMBDA_DEPENDENCIES`; a clean interpreter that imports each handler and
builds what its first invocation builds must load nothing the analysis did not foresee.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache

import pytest

from infra import imports, settings
from infra.imports import canonical
from infra.stack import FUNCTIONS

FUNCTION_NAMES = sorted(settings.LAMBDA_DEPENDENCIES)
PROVIDED = {canonical(d) for d in settings.LAMBDA_RUNTIME_PROVIDED}
# Loaded by a runtime-provided library when present, which falls back on its own otherwise.
OPTIONAL_FOR_THE_RUNTIME = {"certifi": "botocore.httpsession: else botocore's own CA bundle"}
# What each handler's first invocation builds (shared/bootstrap.py), beyond importing the handler.
FIRST_BUILD = {
    "aggregate": ["aggregator", "entitlements"],  # entitlements: the batch hook's refresh wiring
    "ingest": ["ingest_service", "tokens"],
    "notify": ["notify_components"],
    "rate": ["subscriptions", "entitlements", "test_clocks", "llm_prices"],
    "api": ["tokens", "meters", "entitlement_service", "apps", "llm_catalog"],
    "invoice": [],
}


@cache
def analysed(function: str) -> imports.FunctionImports:
    return imports.analyse(function)


def test_every_function_has_a_dependency_set() -> None:
    assert {spec.package for spec in FUNCTIONS} == set(FUNCTION_NAMES) == set(imports.function_packages())
    assert set(FIRST_BUILD) == set(FUNCTION_NAMES)


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_asset_holds_every_distribution_the_function_imports(function: str) -> None:
    needed = analysed(function).distributions()
    installed = imports.closure(settings.LAMBDA_DEPENDENCIES[function]) | PROVIDED
    missing = {dist: sorted(importers) for dist, importers in needed.items() if dist not in installed}
    assert not missing, (
        f"functions/{function} imports {missing} (distribution: importing modules) but its asset would not "
        f"carry them: add them to LAMBDA_DEPENDENCIES[{function!r}] in infra/settings.py and pin them in "
        "requirements-lambda.txt"
    )


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_asset_holds_nothing_the_function_does_not_import(function: str) -> None:
    needed = set(analysed(function).distributions())
    declared = {canonical(d) for d in settings.LAMBDA_DEPENDENCIES[function]}
    unused = declared - needed - set(settings.LAMBDA_INDIRECT_DEPENDENCIES)
    assert not unused, (
        f"LAMBDA_DEPENDENCIES[{function!r}] lists {sorted(unused)}, which its code never imports"
    )


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_no_function_imports_another_functions_package(function: str) -> None:
    # The asset copies only functions/<function>/ (infra/packaging.py copy_sources).
    others = {m for m in analysed(function).modules if m.startswith("functions.")}
    assert {m.split(".")[1] for m in others if m.count(".") >= 1} == {function}


def test_lazy_imports_are_followed() -> None:
    # api reaches stripe only inside bootstrap's Stripe factory and billing modules; rate reaches
    # subscriptions and test clocks through its factories.
    assert "stripe" in analysed("api").distributions()
    rate = analysed("rate").modules
    assert {"shared.subscriptions.service", "shared.testclocks.service"} <= rate


def test_aggregate_path_is_slim() -> None:
    needed = analysed("aggregate").distributions()
    assert not {"stripe", "pydantic", "pydantic-core", "genai-prices", "iso4217", "boto3"} & set(needed)
    assert not {"stripe", "pydantic", "genai-prices"} & imports.closure(
        settings.LAMBDA_DEPENDENCIES["aggregate"]
    )


_PROBE = """
import json, sys
before = set(sys.modules)
import importlib
importlib.import_module(f"functions.{sys.argv[1]}.handler")
for factory in sys.argv[2:]:
    getattr(importlib.import_module("shared.bootstrap"), factory)()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _cold_modules(function: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, function, *FIRST_BUILD[function]],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=settings.REPO_ROOT,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_cold_start_loads_only_what_the_analysis_foresaw(function: str) -> None:
    loaded = _cold_modules(function)
    first_party = {m for m in loaded if m.split(".")[0] in imports.FIRST_PARTY}
    assert first_party <= analysed(function).modules, sorted(first_party - analysed(function).modules)
    dists = imports.packages_distributions()
    tops = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - imports.FIRST_PARTY
    installed = imports.closure(settings.LAMBDA_DEPENDENCIES[function]) | imports.closure(PROVIDED) | PROVIDED
    installed |= set(OPTIONAL_FOR_THE_RUNTIME)
    # Powertools' own dependencies and botocore's come with their closures; private modules
    # (`_cffi_backend`, the editable-install finder) have no distribution.
    unknown = {
        t: dists.get(t) for t in tops if t in dists and not {canonical(d) for d in dists[t]} & installed
    }
    assert not unknown, f"{function} loads {unknown} at cold start, which its asset would not carry"


def test_aggregate_cold_start_loads_no_heavy_module() -> None:
    loaded = {m.split(".")[0] for m in _cold_modules("aggregate")}
    assert (
        not {"stripe", "pydantic", "pydantic_core", "s3transfer", "boto3", "genai_prices", "httpx"} & loaded
    )


def test_asset_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    # Installed size of each function's distributions in this venv (host wheels: close to the
    # manylinux ones `python -m infra.packaging` vendors), plus shared/ and its own package.
    sizes = {
        f: imports.installed_bytes(imports.closure(settings.LAMBDA_DEPENDENCIES[f])) / 1e6
        for f in FUNCTION_NAMES
    }
    with capsys.disabled():
        print("\nvendored MB per function:", {f: round(mb, 1) for f, mb in sizes.items()})
    everything = (
        imports.installed_bytes(
            imports.closure({d for deps in settings.LAMBDA_DEPENDENCIES.values() for d in deps})
        )
        / 1e6
    )
    assert sizes["api"] == pytest.approx(everything)  # the API imports every domain
    assert sizes["aggregate"] < everything / 3  # the single asset of before carried stripe (~45%) to all
    assert max(sizes["notify"], sizes["aggregate"]) < 12 and sizes["ingest"] < 16  # the hot paths stay small
    # Billing carries the PDF stack (reportlab, Pillow, Babel's CLDR data: ~60 MB) and stripe, well
    # under Lambda's 250 MB unzipped limit.
    assert max(sizes["invoice"], sizes["rate"]) < 120
