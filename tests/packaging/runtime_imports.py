"""What the deployed code imports at run time, and which installed distribution provides each module.

Deployed code is ``function_app.py``, ``blueprints/`` and ``shared/`` (``.funcignore`` keeps the
rest out). Imports are read with ``ast``, not by importing: lazy imports inside functions count
(they run in production, just later), imports under ``if TYPE_CHECKING:`` do not, and so do the
string-named ones (``importlib.import_module("x")``, ``LazyModule("x")``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.packaging.requirements_file import ROOT

DEPLOYED_SOURCES = ("function_app.py", "blueprints", "shared")
LOCAL_PACKAGES = {"function_app", "blueprints", "shared"}
# Calls whose first (string) argument is a module imported at run time.
STRING_IMPORTERS = {"import_module", "LazyModule", "__import__"}


@dataclass(frozen=True)
class RuntimeImport:
    """One module imported by deployed code, with the first place it is imported."""

    module: str
    where: str


def deployed_files() -> list[Path]:
    files: list[Path] = []
    for source in DEPLOYED_SOURCES:
        path = ROOT / source
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _modules(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(module, line) for every run-time import in one file's tree."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from a import b`` may import the submodule a.b; the mapping tries it first.
            for alias in node.names:
                yield f"{node.module}.{alias.name}" if alias.name != "*" else node.module, node.lineno
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in STRING_IMPORTERS and isinstance(node.args[0].value, str):
                yield node.args[0].value, node.lineno


def third_party_imports() -> list[RuntimeImport]:
    """Every non-stdlib, non-local module the deployed code imports at run time."""
    seen: dict[str, RuntimeImport] = {}
    for path in deployed_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, line in _modules(tree):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in LOCAL_PACKAGES or top == "__future__":
                continue
            seen.setdefault(module, RuntimeImport(module, f"{path.relative_to(ROOT)}:{line}"))
    return sorted(seen.values(), key=lambda i: i.module)


def _owner_of_file(path: Path, candidates: list[str]) -> str | None:
    resolved = path.resolve()
    for name in candidates:
        dist = importlib.metadata.distribution(name)
        if any(Path(str(dist.locate_file(f))).resolve() == resolved for f in dist.files or []):
            return canonicalize_name(name)
    return None


def distribution_of(module: str) -> str | None:
    """The installed distribution that provides ``module`` (namespace packages resolved by file).

    ``from a import b`` was recorded as ``a.b``, which may name an attribute rather than a module:
    the longest dotted prefix that is a real module decides.
    """
    top = module.split(".", maxsplit=1)[0]
    candidates = importlib.metadata.packages_distributions().get(top, [])
    if len(set(candidates)) == 1:
        return canonicalize_name(candidates[0])
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin not in (None, "namespace"):
            return _owner_of_file(Path(spec.origin), sorted(set(candidates)))
    return None
