"""The settings the code reads are exactly those listed in infra/app-settings.json (readBy "app").

Names come from running the settings readers on a recording environment (which catches computed
names such as ``AzureWebJobsStorage__blobServiceUri``) plus every literal ``os.environ``/``getenv``
read in the app's code; a setting added in code but not in the list (or the reverse) fails here,
and tests/infra checks the Bicep against the same list.
"""

from __future__ import annotations

import ast
import contextlib
import json
from pathlib import Path

from shared.config import Settings
from shared.storage import StorageConfig, StorageNotConfigured

ROOT = Path(__file__).resolve().parents[2]
APP_CODE = [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py")),
            *sorted((ROOT / "blueprints").rglob("*.py"))]


class RecordingEnv(dict[str, str]):
    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def _literal_environment_reads(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in {"get", "getenv"}
                    and ast.unparse(func.value) in {"os.environ", "os"}):
                target = node.args[0].value
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" \
                and isinstance(node.slice, ast.Constant):
            target = node.slice.value
        if isinstance(target, str):
            names.add(target)
    return names


def names_the_code_reads() -> set[str]:
    env = RecordingEnv({"OPENAI_BASE_URL": "http://x/v1"})
    Settings.from_env(env)
    storage_env = RecordingEnv({})
    with contextlib.suppress(StorageNotConfigured):
        StorageConfig.from_env(storage_env)
    identity_env = RecordingEnv({"AzureWebJobsStorage__blobServiceUri": "https://account.blob.example"})
    StorageConfig.from_env(identity_env)
    storage_env.read |= identity_env.read
    names = env.read | {n for n in storage_env.read if ":" not in n}  # ':' spellings are Linux-unsafe aliases
    for path in APP_CODE:
        names |= _literal_environment_reads(path)
    return names


def test_code_and_app_settings_list_agree() -> None:
    spec = json.loads((ROOT / "infra" / "app-settings.json").read_text())
    listed = {s["name"] for s in spec["settings"] if "app" in s.get("readBy", [])}
    read = names_the_code_reads()
    assert read - listed == set(), "read by the code but missing from infra/app-settings.json"
    assert listed - read == set(), "listed as read by the app but no code reads it"
