"""Build the Lambda code assets without Docker: one per function, with only what it imports.

    python -m infra.packaging [--out .build/lambda] [--function aggregate ...]

For each function (`infra.settings.LAMBDA_DEPENDENCIES`), into `<out>/<function>/`:
1. `pip install --target` the distributions that function imports, as manylinux2014 x86_64 CPython
   3.12 wheels (binary only, so nothing is compiled for the host by mistake), with
   requirements-lambda.txt as constraints (the versions come from there);
2. copy `shared/` and the function's own `functions/<function>/` package (without __pycache__);
3. compile every module of the asset to bytecode with a Python of the runtime's version
   (`compile_bytecode`): Lambda's /var/task is read-only, so an asset without it makes the runtime
   compile every module it imports again on every cold start (~90 ms of the aggregate function's
   import and as much of its first build). The .pyc files are `unchecked-hash` (valid whatever
   mtimes the zip gives the sources) and name their sources under /var/task (tracebacks).

boto3/botocore are not vendored: the Lambda runtime provides them.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from infra import settings
from infra.imports import canonical

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".ruff_cache")


def pip_install_command(
    target: Path | str,
    constraints: Path | str,
    packages: Iterable[str],
    *,
    python: str = sys.executable,
    python_version: str = settings.LAMBDA_PYTHON_VERSION,
    platform: str = settings.LAMBDA_PLATFORM,
    implementation: str = settings.LAMBDA_IMPLEMENTATION,
) -> list[str]:
    """The pip command line that installs `packages` (pinned by `constraints`) into `target`."""
    return [
        python, "-m", "pip", "install",
        "--target", str(target),
        "--platform", platform,
        "--implementation", implementation,
        "--python-version", python_version,
        "--only-binary=:all:",
        "--no-compile",  # .pyc files would be for the host interpreter, not the Lambda runtime's
        "--disable-pip-version-check",
        "--quiet",
        "-c", str(constraints),
        *packages,
    ]  # fmt: skip


def copy_sources(out_dir: Path, function: str, root: Path = settings.REPO_ROOT) -> None:
    """Copy `shared/` and `functions/<function>/` (with `functions/__init__.py`) into `out_dir`."""
    for package in settings.LAMBDA_SOURCE_PACKAGES:
        if not (root / package / "__init__.py").is_file():
            raise FileNotFoundError(f"{root / package} is not a Python package")
    if not (root / "functions" / function / "__init__.py").is_file():
        raise FileNotFoundError(f"{root / 'functions' / function} is not a Python package")
    shutil.copytree(root / "shared", out_dir / "shared", ignore=_IGNORE, dirs_exist_ok=True)
    (out_dir / "functions").mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "functions" / "__init__.py", out_dir / "functions" / "__init__.py")
    shutil.copytree(
        root / "functions" / function, out_dir / "functions" / function, ignore=_IGNORE, dirs_exist_ok=True
    )


# Where the Lambda runtime unpacks a function's code: compiled code names its sources there.
LAMBDA_TASK_ROOT = "/var/task"


def runtime_python(python_version: str = settings.LAMBDA_PYTHON_VERSION) -> str | None:
    """An interpreter of the Lambda runtime's Python version (bytecode is per minor version: a 3.11
    .pyc is ignored by 3.12): $METERLINE_LAMBDA_PYTHON, this one, `python3.X` on the PATH or a
    pyenv install. None when there is none."""
    candidates = [
        os.environ.get("METERLINE_LAMBDA_PYTHON", ""),
        sys.executable,
        shutil.which(f"python{python_version}") or "",
        *sorted(
            glob.glob(os.path.expanduser(f"~/.pyenv/versions/{python_version}*/bin/python{python_version}"))
        ),
    ]
    for python in filter(None, candidates):
        probe = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == python_version:
            return python
    return None


def compile_command(out_dir: Path, python: str) -> list[str]:
    """compileall over the asset: unchecked-hash .pyc (the asset never changes once deployed and the
    zip's mtimes are not the build's), source paths as Lambda sees them."""
    return [
        python, "-m", "compileall", "-q", "-j", "0",
        "--invalidation-mode", "unchecked-hash",
        "-s", str(out_dir), "-p", LAMBDA_TASK_ROOT,
        str(out_dir),
    ]  # fmt: skip


def compile_bytecode(out_dir: Path, python_version: str = settings.LAMBDA_PYTHON_VERSION) -> bool:
    """Compile the asset for the runtime's Python; False (and a warning) when no such interpreter is
    found: the asset still works, and its cold starts compile every module they import."""
    python = runtime_python(python_version)
    if python is None:
        print(
            f"warning: no Python {python_version} found (set METERLINE_LAMBDA_PYTHON): {out_dir.name}'s"
            " asset ships without bytecode and compiles its modules on every cold start",
            file=sys.stderr,
        )
        return False
    subprocess.run(compile_command(out_dir, python), check=True, stdout=subprocess.DEVNULL)
    return True


def build_function(
    function: str,
    out_dir: Path,
    *,
    constraints: Path = settings.LAMBDA_REQUIREMENTS,
    root: Path = settings.REPO_ROOT,
    python_version: str = settings.LAMBDA_PYTHON_VERSION,
) -> Path:
    """Rebuild one function's asset in `out_dir` from scratch and return it (`python_version`:
    another interpreter's wheels, for bench/coldstart.py on this machine)."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    packages = settings.LAMBDA_DEPENDENCIES[function]
    subprocess.run(
        pip_install_command(out_dir, constraints, packages, python_version=python_version), check=True
    )
    shutil.rmtree(out_dir / "bin", ignore_errors=True)  # console scripts are useless in Lambda
    prune_runtime_provided(out_dir)
    copy_sources(out_dir, function, root)
    compile_bytecode(out_dir, python_version)
    return out_dir


def prune_runtime_provided(target: Path) -> list[str]:
    """Remove what pip installed of the distributions the Lambda runtime provides (aws-xray-sdk
    depends on botocore, stripe's requests on urllib3): the runtime's own copies are used, as
    botocore expects. Files are found through each distribution's RECORD. Returns the names removed."""
    provided = {canonical(n) for n in settings.LAMBDA_RUNTIME_PROVIDED}
    removed = []
    for info in sorted(target.glob("*.dist-info")):
        name = canonical(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in provided:
            continue
        record = info / "RECORD"
        files = (
            [row[0] for row in csv.reader(record.read_text().splitlines()) if row] if record.is_file() else []
        )
        for rel in files:
            path = (target / rel).resolve()
            if path.is_relative_to(target.resolve()) and path.is_file():
                path.unlink()
        for rel in sorted({Path(f).parts[0] for f in files}):
            top = target / rel
            if top.is_dir() and not any(p.is_file() for p in top.rglob("*")):
                shutil.rmtree(top)
        shutil.rmtree(info, ignore_errors=True)
        removed.append(name)
    return removed


def build(
    out_root: Path = settings.DEFAULT_LAMBDA_ASSET,
    functions: Sequence[str] | None = None,
    *,
    constraints: Path = settings.LAMBDA_REQUIREMENTS,
    root: Path = settings.REPO_ROOT,
) -> dict[str, Path]:
    """Build every function's asset (or those named) under `out_root`; function -> asset directory."""
    names = list(functions or settings.LAMBDA_DEPENDENCIES)
    unknown = sorted(set(names) - set(settings.LAMBDA_DEPENDENCIES))
    if unknown:
        raise KeyError(f"no such function: {', '.join(unknown)}")
    out_root = Path(out_root).resolve()
    if functions is None:  # a full build leaves nothing stale (the single asset of before, say)
        for stale in out_root.iterdir() if out_root.is_dir() else []:
            if stale.name not in settings.LAMBDA_DEPENDENCIES:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return {name: build_function(name, out_root / name, constraints=constraints, root=root) for name in names}


def size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.packaging", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=settings.DEFAULT_LAMBDA_ASSET, help="asset root directory"
    )
    parser.add_argument("--function", action="append", choices=sorted(settings.LAMBDA_DEPENDENCIES))
    parser.add_argument("--print-command", action="store_true", help="print the pip commands and exit")
    args = parser.parse_args(argv)
    names = args.function or list(settings.LAMBDA_DEPENDENCIES)
    if args.print_command:
        for name in names:
            cmd = pip_install_command(
                args.out / name, settings.LAMBDA_REQUIREMENTS, settings.LAMBDA_DEPENDENCIES[name]
            )
            print(" ".join(cmd))
        return 0
    for name, out in build(args.out, args.function).items():
        print(f"{name:10s} {size_bytes(out) / 1e6:6.1f} MB unzipped  {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
