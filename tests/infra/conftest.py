"""Fixtures for the offline infrastructure checks.

The Bicep templates are parsed by pycep-parser (the parser checkov itself uses) and
scanned by checkov. Both live in the separate tool venv .venv-infra (checkov pins many
packages), so these tests shell out to it:

* ``templates``: runs tests/infra/bicep_to_json.py under the infra venv and wraps the
  parsed templates in a small query helper (``Templates``).
* ``checkov_report``: runs checkov once per session and returns its JSON report.

Environment:
  INFRA_PYTHON      interpreter of the infra venv (default: <repo>/.venv-infra/bin/python)
  INFRA_TEST_ROOT   tree to check instead of this repository (must contain infra/ and
                    azure.yaml); used to prove the tests catch a broken copy.

Set up the infra venv with:
  python3 -m venv .venv-infra && .venv-infra/bin/pip install -r requirements-infra.txt
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _infra_python() -> Path:
    configured = os.environ.get("INFRA_PYTHON")
    return Path(configured) if configured else REPO_ROOT / ".venv-infra" / "bin" / "python"


def _require_infra_venv() -> Path:
    python = _infra_python()
    if not python.exists():
        pytest.fail(
            f"infra tool venv not found ({python}). Create it with: "
            "python3 -m venv .venv-infra && .venv-infra/bin/pip install -r requirements-infra.txt",
            pytrace=False,
        )
    return python


# --------------------------------------------------------------------------------------
# Reading pycep output
# --------------------------------------------------------------------------------------


def unquote(key: str) -> str:
    """pycep keeps the quotes of quoted object keys ('azd-service-name')."""
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1]
    return key


def keys(obj: dict[str, Any]) -> set[str]:
    return {unquote(k) for k in obj}


def get(obj: Any, path: str, *, ignore_case: bool = False) -> Any:
    """Walk a dotted path through nested dicts; None when any step is missing."""
    current = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        found = None
        for key, value in current.items():
            name = unquote(key)
            if name == part or (ignore_case and name.lower() == part.lower()):
                found = (value,)
                break
        if found is None:
            return None
        current = found[0]
    return current


def accessor_path(value: Any) -> list[str] | None:
    """`a.b.c` as pycep nests it (property_accessor operators) -> ['a', 'b', 'c']."""
    if isinstance(value, str):
        return [value]
    operator = value.get("operator") if isinstance(value, dict) else None
    if not operator or operator.get("type") != "property_accessor":
        return None
    operands = operator["operands"]
    head = accessor_path(operands["operand_1"])
    tail = accessor_path(operands["operand_2"])
    if head is None or tail is None:
        return None
    return head + tail


def function_call(value: Any) -> tuple[str, dict[str, Any]] | None:
    """A pycep function node -> (function type, parameters)."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        fn = value["function"]
        return fn.get("type"), fn.get("parameters") or {}
    return None


@dataclass
class Resource:
    file: str
    symbol: str
    type: str
    existing: bool
    config: dict[str, Any]  # body, with any `if (...)` / `[for ...]` wrapper removed
    condition: Any
    loop: Any


@dataclass
class ModuleCall:
    file: str
    symbol: str
    path: str  # module path relative to infra/
    config: dict[str, Any]
    condition: Any

    @property
    def params(self) -> dict[str, Any]:
        return {unquote(k): v for k, v in (self.config.get("params") or {}).items()}


def _unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Conditional and loop resources/modules nest their body under config.config."""
    condition = loop = None
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        condition = config.get("condition", condition)
        loop = config.get("loop_type", loop)
        config = config["config"]
    return config, condition, loop


class Templates:
    """The parsed infra/ tree (relative paths like 'core/storage.bicep')."""

    # pycep helpers, reachable from tests through the fixture (no imports from conftest).
    unquote = staticmethod(unquote)
    keys = staticmethod(keys)
    get = staticmethod(get)
    accessor_path = staticmethod(accessor_path)
    function_call = staticmethod(function_call)

    def __init__(self, root: Path, dump: dict[str, Any]) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = dump["bicep"]
        self.errors: dict[str, str] = dump["errors"]
        self.azure_yaml: dict[str, Any] | None = dump["azure_yaml"]

    def text(self, rel: str) -> str:
        return (self.root / "infra" / rel).read_text(encoding="utf-8")

    def params(self, rel: str) -> dict[str, Any]:
        return self.files[rel].get("parameters") or {}

    def variables(self, rel: str) -> dict[str, Any]:
        return self.files[rel].get("variables") or {}

    def var(self, rel: str, name: str) -> Any:
        return self.variables(rel)[name]["value"]

    def outputs(self, rel: str) -> dict[str, Any]:
        return self.files[rel].get("outputs") or {}

    def param_default(self, rel: str, name: str) -> Any:
        return self.params(rel)[name]["default"]

    def resources(self, type_: str | None = None, file: str | None = None) -> list[Resource]:
        found = []
        for rel, template in self.files.items():
            if file is not None and rel != file:
                continue
            for symbol, res in (template.get("resources") or {}).items():
                if type_ is not None and res["type"].lower() != type_.lower():
                    continue
                body, condition, loop = _unwrap(res["config"])
                found.append(Resource(rel, symbol, res["type"], bool(res.get("existing")), body, condition, loop))
        return found

    def resource(self, type_: str, file: str | None = None, *, existing: bool = False) -> Resource:
        matches = [r for r in self.resources(type_, file) if r.existing == existing]
        assert len(matches) == 1, f"expected exactly one {type_} (existing={existing}) in {file or 'infra/'}: {matches}"
        return matches[0]

    def modules(self, target: str | None = None, file: str | None = None) -> list[ModuleCall]:
        found = []
        for rel, template in self.files.items():
            if file is not None and rel != file:
                continue
            base = Path(rel).parent
            for symbol, mod in (template.get("modules") or {}).items():
                path = (base / mod["detail"]["path"]).as_posix()
                path = os.path.normpath(path)
                if target is not None and path != target:
                    continue
                body, condition, _ = _unwrap(mod["config"])
                found.append(ModuleCall(rel, symbol, path, body, condition))
        return found

    def module(self, target: str, file: str = "main.bicep") -> ModuleCall:
        matches = self.modules(target, file)
        assert len(matches) == 1, f"expected exactly one call of {target} in {file}: {matches}"
        return matches[0]


@pytest.fixture(scope="session")
def infra_root() -> Path:
    configured = os.environ.get("INFRA_TEST_ROOT")
    return Path(configured).resolve() if configured else REPO_ROOT


@pytest.fixture(scope="session")
def infra_python() -> Path:
    """Interpreter of the infra tool venv (pycep, checkov, the Azure SDK models)."""
    return _require_infra_venv()


@pytest.fixture(scope="session")
def templates(infra_root: Path) -> Templates:
    python = _require_infra_venv()
    proc = subprocess.run(
        [str(python), str(HERE / "bicep_to_json.py"), str(infra_root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"bicep_to_json.py failed:\n{proc.stderr}"
    return Templates(infra_root, json.loads(proc.stdout))


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    python = _require_infra_venv()
    checkov = python.parent / "checkov"
    if not checkov.exists():
        pytest.fail(f"checkov not installed in the infra venv ({checkov})", pytrace=False)
    return checkov


@pytest.fixture(scope="session")
def checkov_report(infra_root: Path, checkov_bin: Path) -> dict[str, Any]:
    """Full JSON report (passed, failed and skipped checks) for infra/."""
    proc = subprocess.run(
        [
            str(checkov_bin),
            "-d",
            str(infra_root / "infra"),
            "--framework",
            "bicep",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.stdout.strip(), f"checkov printed no report (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout)
    # One framework -> one report object (a list when several frameworks ran).
    if isinstance(report, list):
        report = next(r for r in report if r.get("check_type") == "bicep")
    report["_exit_code"] = proc.returncode
    report["_stderr"] = proc.stderr
    return report


@dataclass
class ScriptRun:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def check_sh_runs(
    infra_root: Path, checkov_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ScriptRun]:
    """infra/check.sh on three small trees, run in parallel (each run pays checkov's start-up):

    * clean: core/storage.bicep as is (its suppressions cover all its findings)
    * failing: core/storage.bicep without one of its suppressions
    * unparsable: core/identity.bicep plus a file pycep cannot parse
    """
    infra = infra_root / "infra"
    storage = (infra / "core" / "storage.bicep").read_text(encoding="utf-8")
    trees = {
        "clean": {"storage.bicep": storage},
        "failing": {
            "storage.bicep": "\n".join(
                line for line in storage.splitlines() if "checkov:skip=CKV_AZURE_206" not in line
            )
            + "\n"
        },
        "unparsable": {
            "identity.bicep": (infra / "core" / "identity.bicep").read_text(encoding="utf-8"),
            "broken.bicep": "resource x 'A/b@2020-01-01' = {\n  name: 'x'\n  !!!\n}\n",
        },
    }
    procs = {}
    for name, files in trees.items():
        target = tmp_path_factory.mktemp(f"check-sh-{name}")
        for filename, text in files.items():
            (target / filename).write_text(text, encoding="utf-8")
        procs[name] = subprocess.Popen(
            ["bash", str(infra / "check.sh"), str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CHECKOV": str(checkov_bin)},
        )
    runs = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        runs[name] = ScriptRun(proc.returncode, stdout, stderr)
    return runs


@pytest.fixture(scope="session")
def app_settings_spec(infra_root: Path) -> dict[str, Any]:
    return json.loads((infra_root / "infra" / "app-settings.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def main_parameters(infra_root: Path) -> dict[str, Any]:
    return json.loads((infra_root / "infra" / "main.parameters.json").read_text(encoding="utf-8"))
