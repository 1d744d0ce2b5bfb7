"""Cold start per function: the handler's import and its first build, before and after.

    python -m bench coldstart [--runs 7] [--baseline <commit>]

Each function runs as Lambda runs it, as far as one machine can: a fresh interpreter (`-I -S`: no
site-packages) of the Lambda runtime's Python version when this machine has one
(`infra.packaging.runtime_python`: settings.LAMBDA_PYTHON_VERSION; else this interpreter, and the
output says which), whose path holds only the function's code asset and the runtime's SDK (boto3,
botocore and their dependencies, copied from this venv and compiled for that Python, as the
runtime's are), with `LAMBDA_TASK_ROOT` set, so the X-Ray tracer is built and patches what the
asset carries, as on AWS. `-B`: /var/task is read-only, so a module without bytecode in the asset
is compiled again by every cold start, and the probes write none either. Distributions are
installed for that Python (same pins as the deployed assets) and cached under .build/bench-coldstart/.

"before" is the baseline commit (`git archive`, like `python -m bench cost`): one asset with every
dependency for every function, without bytecode (as that commit packaged it). "after" is this tree:
each function's own asset as infra/packaging.py builds it (with bytecode when it compiles it).
Printed per function: the asset's size, the median wall time of `import functions.<f>.handler`
and of the first build (the bootstrap factories its first invocation builds), and the median CPU
time of the import, over `--runs` interleaved runs (before and after alternate, so machine load
hits both alike).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from infra import packaging, settings

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".build" / "bench-coldstart"
# main before issue 12's packaging and cold-start work.
COLDSTART_BASELINE = "bd10f1f4e301a152cbecd4af51e5b97fd4f3b97b"
FUNCTIONS = ("aggregate", "ingest", "api", "rate", "notify", "invoice")
# What each handler's first invocation builds (shared/bootstrap.py factories), after its import.
FIRST_BUILD: dict[str, list[str]] = {
    "aggregate": ["aggregator", "entitlements"],  # entitlements: the batch hook's access-state refresh
    "ingest": ["ingest_service", "tokens"],
    "notify": ["notify_components"],
    "rate": ["subscriptions", "entitlements", "test_clocks", "llm_prices"],
    "api": ["tokens", "meters", "entitlement_service", "apps", "llm_catalog"],
    "invoice": [],
}

_PROBE = """
import importlib, json, os, sys, time
sys.path[:0] = json.loads(os.environ["COLDSTART_PATH"])
function, factories = sys.argv[1], sys.argv[2:]
c0, t0 = time.process_time(), time.perf_counter()
importlib.import_module(f"functions.{function}.handler")
c1, t1 = time.process_time(), time.perf_counter()
for factory in factories:
    getattr(importlib.import_module("shared.bootstrap"), factory)()
t2 = time.perf_counter()
print(json.dumps({"import": (t1 - t0) * 1e3, "import_cpu": (c1 - c0) * 1e3, "build": (t2 - t1) * 1e3,
                  "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class Variant:
    label: str
    sources: Path | None  # holds functions/ and shared/ (None: each function's asset does)
    deps: dict[str, Path]  # function -> its vendored distributions
    size_mb: dict[str, float]


def _interpreter() -> tuple[str, str]:
    """(python, its X.Y): the Lambda runtime's version when this machine has it, else this one."""
    python = packaging.runtime_python()
    if python is not None:
        return python, settings.LAMBDA_PYTHON_VERSION
    return sys.executable, f"{sys.version_info.major}.{sys.version_info.minor}"


def _runtime_dir(python: str, pyver: str) -> Path:
    """boto3, botocore and their dependencies, as the Lambda runtime provides them (pure Python,
    copied from this venv and compiled for `python`)."""
    out = CACHE / f"runtime-{pyver}"
    if out.is_dir():
        return out
    tmp = Path(tempfile.mkdtemp(dir=CACHE))
    for name in settings.LAMBDA_RUNTIME_PROVIDED:
        dist = metadata.distribution(name)
        site = Path(str(dist.locate_file("")))
        for top in {file.parts[0] for file in dist.files or []}:
            if top.endswith(".dist-info") or top in ("..", "bin", "__pycache__") or (tmp / top).exists():
                continue
            if (site / top).is_dir():
                shutil.copytree(site / top, tmp / top, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(site / top, tmp / top)
    subprocess.run(packaging.compile_command(tmp, python), check=True, stdout=subprocess.DEVNULL)
    tmp.rename(out)
    return out


def _deps(pip_args: list[str], pins: str, pyver: str) -> Path:
    """pip install into a cached directory named for its arguments and pins (the requirements file's
    text); runtime-provided distributions pruned, as infra/packaging.py does. No bytecode."""
    key = hashlib.sha256(json.dumps(["v2", pyver, pins, *pip_args[2:]]).encode()).hexdigest()[:16]
    out = CACHE / "deps" / key
    if out.is_dir():
        return out
    tmp = Path(tempfile.mkdtemp(dir=CACHE))
    cmd = packaging.pip_install_command(tmp, "unused", [], python_version=pyver)
    cmd = cmd[: cmd.index("-c")] + pip_args
    subprocess.run(cmd, check=True)
    packaging.prune_runtime_provided(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


def _mb(*paths: Path) -> float:
    """Unzipped size as deployed (with the bytecode packaging compiles; the probes write none)."""
    files = (f for p in paths for f in p.rglob("*") if f.is_file())
    return sum(f.stat().st_size for f in files) / 1e6


def before(tree: Path, label: str, pyver: str) -> Variant:
    """The baseline: one asset (its requirements-lambda.txt, all of functions/ and shared/) for all."""
    requirements = tree / "requirements-lambda.txt"
    deps = _deps(["-r", str(requirements)], requirements.read_text(), pyver)
    size = _mb(deps, tree / "functions", tree / "shared")
    return Variant(label, tree, dict.fromkeys(FUNCTIONS, deps), dict.fromkeys(FUNCTIONS, size))


def after(tree: Path, out: Path, python: str, pyver: str, functions: tuple[str, ...]) -> Variant:
    """This tree: each function's asset as infra/packaging.py builds it (its own distributions,
    shared/ and its own package, then bytecode when packaging compiles for this Python), in `out`."""
    constraints = tree / "requirements-lambda.txt"
    pins = constraints.read_text()
    deps, size = {}, {}
    for f in functions:
        asset = out / f
        shutil.copytree(_deps(["-c", str(constraints), *settings.LAMBDA_DEPENDENCIES[f]], pins, pyver), asset)
        packaging.copy_sources(asset, f, tree)
        if packaging.runtime_python(pyver) == python:
            subprocess.run(packaging.compile_command(asset, python), check=True, stdout=subprocess.DEVNULL)
        deps[f], size[f] = asset, _mb(asset)
    return Variant("after", None, deps, size)


def probe(variant: Variant, function: str, runtime: Path, python: str) -> dict[str, float]:
    task_root = variant.sources or variant.deps[function]
    path = [str(p) for p in dict.fromkeys([task_root, variant.deps[function], runtime])]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "COLDSTART_PATH": json.dumps(path),
        "LAMBDA_TASK_ROOT": str(task_root),  # as in Lambda: tracing on (shared/core/observability.py)
        "AWS_LAMBDA_FUNCTION_NAME": f"meterline-{function}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_SERVICE_NAME": settings.SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": settings.METRICS_NAMESPACE,
    }
    out = subprocess.run(
        [python, "-I", "-S", "-B", "-c", _PROBE, function, *FIRST_BUILD[function]],
        env=env,
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(
    runs: int = 7, baseline: str | None = COLDSTART_BASELINE, functions: tuple[str, ...] = FUNCTIONS
) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    python, pyver = _interpreter()
    runtime = _runtime_dir(python, pyver)
    with (
        tempfile.TemporaryDirectory(prefix="meterline-baseline-") as tmp,
        tempfile.TemporaryDirectory(prefix="meterline-after-", dir=CACHE) as assets,
    ):
        variants = [after(ROOT, Path(assets), python, pyver, functions)]  # (labelled "after": this tree)
        if baseline:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", baseline], check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            variants.insert(0, before(Path(tmp), f"before ({baseline[:7]})", pyver))
        samples: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(runs):
            for function in functions:
                for v in variants:
                    samples.setdefault((v.label, function), []).append(probe(v, function, runtime, python))
        print(
            f"cold start per function (fresh interpreter, Python {pyver}, only the asset + the runtime's "
            f"SDK on the path, no bytecode written, tracing on; median of {runs})"
        )
        header = f"  {'function':10s}" + "".join(f"{v.label:>44s}" for v in variants)
        print(header)
        print(f"  {'':10s}" + "".join(f"{'asset MB  import ms (cpu)  1st build ms':>44s}" for _ in variants))
        for function in functions:
            cells = []
            for v in variants:
                got = samples[(v.label, function)]

                def med(key: str, got: list[dict[str, float]] = got) -> float:
                    return statistics.median(s[key] for s in got)

                cells.append(
                    f"{v.size_mb[function]:8.1f}  {med('import'):9.0f} ({med('import_cpu'):4.0f})"
                    f"  {med('build'):12.0f}"
                )
            print(f"  {function:10s}" + "".join(f"{c:>44s}" for c in cells))


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
