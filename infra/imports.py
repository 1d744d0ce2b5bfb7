"""What each Lambda function imports, found by reading the source: the basis of its code asset.

    python -m infra.imports            # per function: the distributions it imports, and from where

A function's modules are the first-party modules reachable from `functions/<name>/handler.py`
through every import statement, at module level AND inside functions (lazy imports count: they
run on some code path). One exception keeps the composition root from tying everything together:
`shared.bootstrap` loads each domain inside the factory that builds it, so only the factories a
function's modules name (`bootstrap.x`, `from shared.bootstrap import x`), and the bootstrap
functions those name, contribute their imports. Imports under `if TYPE_CHECKING:` never run and
are skipped.

The third-party modules those import, mapped to their distributions (the dev venv's metadata),
are what the function's asset must carry; `infra.settings.LAMBDA_DEPENDENCIES` declares them and
tests/infra/test_assets.py holds the two together.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from infra import settings

FIRST_PARTY = frozenset(settings.LAMBDA_SOURCE_PACKAGES)
BOOTSTRAP = "shared.bootstrap"
# Standard-library modules that need a distribution on Lambda: zoneinfo reads the `tzdata` package
# when the system has no time zone database (the python3.12 image, AL2023 minimal, has none).
IMPLIED = {"zoneinfo": "tzdata"}


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class _Imports:
    """The import statements of one module (or of one bootstrap function)."""

    modules: set[str] = field(default_factory=set)  # absolute dotted names, as written
    bootstrap_names: set[str] = field(default_factory=set)  # factories named from shared.bootstrap


@dataclass
class _Module:
    name: str
    body: _Imports  # everything except, for shared.bootstrap, the insides of its functions
    functions: dict[str, _Imports] = field(default_factory=dict)  # shared.bootstrap only
    local_names: dict[str, set[str]] = field(default_factory=dict)  # bootstrap: function -> names used


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.out = _Imports()
        self.bootstrap_aliases: set[str] = set()  # local names bound to the shared.bootstrap module

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.out.modules.add(alias.name)
            if alias.name == BOOTSTRAP and alias.asname:
                self.bootstrap_aliases.add(alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, self.is_package, node)
        self.out.modules.add(base)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full == BOOTSTRAP:
                self.bootstrap_aliases.add(alias.asname or alias.name)
                self.out.modules.add(full)  # `from shared import bootstrap` runs shared/bootstrap.py
            elif base == BOOTSTRAP:
                self.out.bootstrap_names.add(alias.name)
            else:
                self.out.modules.add(full)  # `from pkg import module`; dropped later if not a module

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.bootstrap_aliases:
            self.out.bootstrap_names.add(node.attr)
        self.generic_visit(node)


def _parse(path: Path, name: str) -> _Module:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    if name != BOOTSTRAP:
        collector = _Collector(name, is_package)
        collector.visit(tree)
        return _Module(name, collector.out)
    # The composition root: its functions' imports count only when a function is used.
    body = _Collector(name, is_package)
    module = _Module(name, body.out)
    top_level = {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            inner = _Collector(name, is_package)
            inner.visit(node)
            module.functions[node.name] = inner.out
            module.local_names[node.name] = (_free_names(node) & top_level) - {node.name}
        else:
            body.visit(node)
    return module


def _free_names(node: ast.AST) -> set[str]:
    """Names read in `node` that it does not bind itself (a local `customers = ...` is no factory)."""
    read, bound = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (read if isinstance(n.ctx, ast.Load) else bound).add(n.id)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
    return read - bound


def _source(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class FunctionImports:
    """A function's first-party modules and the third-party top-level modules they import."""

    function: str
    modules: frozenset[str]
    third_party: dict[str, frozenset[str]]  # top-level module -> the first-party modules importing it

    def distributions(self) -> dict[str, frozenset[str]]:
        """Distribution (canonical name) -> the first-party modules that need it."""
        by_module = packages_distributions()
        out: dict[str, set[str]] = {}
        for top, importers in self.third_party.items():
            dists = by_module.get(top) or IMPLIED.get(top)
            if dists is None:
                raise LookupError(
                    f"{top} (imported by {sorted(importers)}) belongs to no installed distribution"
                )
            for dist in [dists] if isinstance(dists, str) else dists:
                out.setdefault(canonical(dist), set()).update(importers)
        return {d: frozenset(m) for d, m in out.items()}


def analyse(function: str, root: Path = settings.REPO_ROOT) -> FunctionImports:
    """Everything `functions/<function>/handler.py` can import, at cold start or later."""
    modules: dict[str, _Module] = {}
    third_party: dict[str, set[str]] = {}
    used_factories: set[str] = set()
    pending: list[str] = []

    def add(name: str, importer: str) -> None:
        top = name.split(".")[0]
        if top in FIRST_PARTY:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                if _source(".".join(parts[:i]), root) is not None:
                    pending.append(".".join(parts[:i]))
        elif top in IMPLIED or top not in sys.stdlib_module_names:
            third_party.setdefault(top, set()).add(importer)

    def use(imports: _Imports, importer: str) -> None:
        for name in imports.modules:
            add(name, importer)
        pending_factories.extend(imports.bootstrap_names)

    pending_factories: list[str] = []
    add(f"functions.{function}.handler", "the Lambda runtime")  # its packages' __init__ run first
    while pending or pending_factories:
        while pending:
            name = pending.pop()
            if name in modules:
                continue
            path = _source(name, root)
            if path is None:
                continue
            modules[name] = module = _parse(path, name)
            use(module.body, name)
        while pending_factories:
            factory = pending_factories.pop()
            boot = modules.get(BOOTSTRAP)
            if factory in used_factories or boot is None or factory not in boot.functions:
                continue
            used_factories.add(factory)
            use(boot.functions[factory], BOOTSTRAP)
            pending_factories.extend(boot.local_names[factory])
    return FunctionImports(
        function,
        frozenset(modules),
        {top: frozenset(importers) for top, importers in third_party.items()},
    )


@cache
def packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def function_packages(root: Path = settings.REPO_ROOT) -> list[str]:
    """The function packages: `functions/<name>/handler.py`."""
    return sorted(p.parent.name for p in (root / "functions").glob("*/handler.py"))


def _lines(names: Iterable[str]) -> Iterator[str]:
    for fn in names:
        found = analyse(fn)
        yield f"{fn}: {len(found.modules)} first-party modules"
        for dist, importers in sorted(found.distributions().items()):
            yield f"  {dist:24s} {', '.join(sorted(importers)[:3])}{' ...' if len(importers) > 3 else ''}"


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or function_packages()
    print("\n".join(_lines(names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def closure(distributions: Iterable[str]) -> set[str]:
    """The distributions pip installs for these (their dependencies, transitively; markers evaluated
    for this interpreter), read from the installed metadata. The runtime-provided ones are not
    followed (the runtime brings them and theirs)."""
    from packaging.requirements import Requirement

    provided = {canonical(d) for d in settings.LAMBDA_RUNTIME_PROVIDED}
    seen: set[str] = set()
    pending = [canonical(d) for d in distributions]
    while pending:
        name = pending.pop()
        if name in seen or name in provided:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(canonical(req.name))
    return seen


def installed_bytes(distributions: Iterable[str]) -> int:
    """What these distributions occupy installed here (their RECORD files, no bytecode)."""
    total = 0
    for name in distributions:
        for file in importlib.metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.suffix != ".pyc" and path.is_file():
                total += path.stat().st_size
    return total
