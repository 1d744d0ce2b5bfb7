"""Build the Lambda code asset without Docker.

    python -m infra.packaging [--out .build/lambda] [--requirements requirements-lambda.txt]

1. `pip install --target <out>` the runtime dependencies as manylinux2014 x86_64 CPython 3.12
   wheels (binary only, so nothing is compiled for the host by mistake);
2. copy the `functions/` and `shared/` packages in (without __pycache__).

boto3/botocore are not vendored: the Lambda runtime provides them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from infra import settings

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".ruff_cache")
# Present in the runtime; a vendored copy would shadow it with a version the runtime wasn't tested with.
_RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")


def pip_install_command(
    target: Path | str,
    requirements: Path | str,
    *,
    python: str = sys.executable,
    python_version: str = settings.LAMBDA_PYTHON_VERSION,
    platform: str = settings.LAMBDA_PLATFORM,
    implementation: str = settings.LAMBDA_IMPLEMENTATION,
) -> list[str]:
    """The pip command line that installs the Lambda dependencies into `target`."""
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
        "-r", str(requirements),
    ]  # fmt: skip


def copy_sources(out_dir: Path, root: Path = settings.REPO_ROOT) -> None:
    """Copy the first-party packages (`functions/`, `shared/`) into `out_dir`."""
    for package in settings.LAMBDA_SOURCE_PACKAGES:
        src = root / package
        if not (src / "__init__.py").is_file():
            raise FileNotFoundError(f"{src} is not a Python package")
        shutil.copytree(src, out_dir / package, ignore=_IGNORE, dirs_exist_ok=True)


def build(
    out_dir: Path = settings.DEFAULT_LAMBDA_ASSET,
    requirements: Path = settings.LAMBDA_REQUIREMENTS,
    *,
    root: Path = settings.REPO_ROOT,
) -> Path:
    """Rebuild `out_dir` from scratch and return it."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    subprocess.run(pip_install_command(out_dir, requirements), check=True)
    shutil.rmtree(out_dir / "bin", ignore_errors=True)  # console scripts are useless in Lambda
    vendored = [name for name in _RUNTIME_PROVIDED if (out_dir / name).exists()]
    if vendored:
        raise RuntimeError(
            f"{', '.join(vendored)} got vendored via a dependency of {requirements}; "
            "the Lambda runtime provides them, drop the dependency pulling them in"
        )
    copy_sources(out_dir, root)
    return out_dir


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.packaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=settings.DEFAULT_LAMBDA_ASSET, help="asset directory")
    parser.add_argument("--requirements", type=Path, default=settings.LAMBDA_REQUIREMENTS)
    parser.add_argument("--print-command", action="store_true", help="print the pip command and exit")
    args = parser.parse_args(argv)
    if args.print_command:
        print(" ".join(pip_install_command(args.out, args.requirements)))
        return 0
    out = build(args.out, args.requirements)
    print(f"Lambda asset built in {out} ({_size_mb(out):.1f} MB unzipped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
