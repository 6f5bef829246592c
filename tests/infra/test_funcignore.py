""".funcignore keeps local tooling out of the package azd deploys, and keeps the app in it.

azd zips the project folder (azure.yaml: project ".") minus .funcignore, and the remote build
installs requirements.txt into the package. Anything else that lands in the zip is dead weight
at best; a local venv or a prebuilt .python_packages/ from another platform is worse, because the
worker may import it instead of what the remote build installed.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

# Paths (as in the project folder) that must not be deployed, with why.
EXCLUDED = {
    ".venv/bin/python": "the local venv",
    ".venv-infra/bin/checkov": "the infra tool venv",
    ".python_packages/lib/site-packages/x.py": "packages from `func pack` / a local build, for another platform",
    "main_env/bin/python": "the venv azd's Python restore creates, named <project folder>_env",
    "azure-openai-functions-gateway_env/lib/x.py": "the same, for another folder name",
    "local.settings.json": "local secrets",
    ".azure/dev/.env": "azd environment values",
    "tests/unit/test_x.py": "tests",
    "node_modules/azurite/x.js": "Azurite",
    "infra/main.bicep": "templates",
    "devhost/run.py": "the local host",
    "simulator/app.py": "the local simulator",
    "bench/results/bench.json": "benchmarks",
}

# What the app needs at run time: must stay in the package.
INCLUDED = [
    "function_app.py",
    "host.json",
    "requirements.txt",
    "shared/config.py",
    "shared/jobs/worker.py",
    "blueprints/functions.py",
    "web/index.html",
    "schemas/embedding-job-message.v1.json",
]


def _patterns(root: Path) -> list[str]:
    lines = (root / ".funcignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """gitignore-style matching for the pattern forms .funcignore uses (no negation)."""
    parts = path.split("/")
    for pattern in patterns:
        assert not pattern.startswith("!"), "negations are not supported by this check"
        directory = pattern.endswith("/")
        body = pattern.strip("/")
        anchored = pattern.startswith("/") or "/" in body
        # A pattern matches a path component (or, anchored, the path from the root), and a
        # directory pattern matches everything below it.
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] if anchored else parts
        for index, candidate in enumerate(candidates):
            is_last = index == len(candidates) - 1
            if fnmatch.fnmatchcase(candidate, body) and not (directory and is_last):
                return True
    return False


@pytest.mark.parametrize("path", sorted(EXCLUDED))
def test_tooling_is_not_deployed(infra_root, path):
    assert _ignored(path, _patterns(infra_root)), f"{path} would be deployed: {EXCLUDED[path]}"


@pytest.mark.parametrize("path", INCLUDED)
def test_the_app_is_deployed(infra_root, path):
    assert (infra_root / path).exists(), path
    assert not _ignored(path, _patterns(infra_root)), f"{path} is needed at run time but .funcignore drops it"
