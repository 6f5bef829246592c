"""Resolve ``requirements.txt`` as the remote build will: CPython 3.13, Linux x86_64, wheels only.

pip evaluates environment markers against the interpreter that runs it, whatever
``--python-version`` says, so the resolution must run under a real Python 3.13 (the worker venv
``make test`` builds, or any python3.13 found the same way the Makefile finds it).

Platform tags: the Python 3.13 images of Flex Consumption have glibc 2.28 or newer; we accept
manylinux tags up to ``manylinux_2_28`` (and the legacy aliases). Accepting fewer tags than the
image would only ever fail a deployable wheel, never pass an undeployable one.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from tests.packaging.requirements_file import DEPLOYED_PYTHON, REQUIREMENTS, ROOT

GLIBC_MAX_MINOR = 28
PLATFORM_TAGS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MAX_MINOR, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
# What pip prints when it cannot reach an index at all (as opposed to a resolution failure).
UNREACHABLE = ("NewConnectionError", "Temporary failure in name resolution", "Max retries exceeded",
               "Network is unreachable", "ConnectTimeoutError", "ProxyError", "No route to host")


def python313() -> str | None:
    """A Python 3.13 interpreter with pip, found like the Makefile's ``PY313``; None when there is none."""
    candidates = [str(ROOT / ".venv-py313" / "bin" / "python")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        candidates += sorted(glob.glob(f"{root}/versions/3.13*/bin/python3.13"))
    candidates += [p for p in (shutil.which("python3.13"),) if p]
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import sys, pip; assert sys.version_info[:2] == (3, 13)"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


@dataclass
class Resolution:
    """What pip would install (``installed``: canonical name -> report entry), or why it could not."""

    returncode: int
    output: str
    report: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.report)

    @property
    def unreachable(self) -> bool:
        return not self.ok and any(sign in self.output for sign in UNREACHABLE)

    @property
    def installed(self) -> dict[str, dict[str, Any]]:
        return {canonicalize_name(item["metadata"]["name"]): item for item in self.report.get("install", [])}

    def version(self, name: str) -> str | None:
        item = self.installed.get(name)
        return None if item is None else str(item["metadata"]["version"])


def resolve(python: str, requirements: Path = REQUIREMENTS, *, ignore_requires_python: bool = False) -> Resolution:
    """``pip install --dry-run --report`` for the deployed target; never installs anything."""
    with tempfile.TemporaryDirectory(prefix="resolve-") as folder:
        report = Path(folder) / "report.json"
        argv = [python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
                "--only-binary=:all:", "--python-version", DEPLOYED_PYTHON, "--implementation", "cp",
                "--target", str(Path(folder) / "target"), "--report", str(report),
                "--timeout", "20", "--retries", "2", "-r", str(requirements)]
        for tag in PLATFORM_TAGS:
            argv += ["--platform", tag]
        if ignore_requires_python:
            argv.append("--ignore-requires-python")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=ROOT)
        parsed = json.loads(report.read_text()) if report.exists() else {}
    return Resolution(done.returncode, done.stdout + done.stderr, parsed)
