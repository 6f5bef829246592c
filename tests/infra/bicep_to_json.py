"""Dump the infra templates as JSON, for tests/infra.

Runs under the infra tool venv (.venv-infra), which has pycep-parser (the Bicep parser
checkov uses) and PyYAML; the main test venv then reads the JSON from stdout. This keeps
the project's own venv free of checkov's pinned dependencies.

    .venv-infra/bin/python tests/infra/bicep_to_json.py <repo root>

Output: {"bicep": {relpath: parsed}, "errors": {relpath: message}, "azure_yaml": {...}}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from pycep import BicepParser


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    parser = BicepParser()
    parsed: dict[str, object] = {}
    errors: dict[str, str] = {}
    for path in sorted((root / "infra").rglob("*.bicep")):
        rel = path.relative_to(root / "infra").as_posix()
        try:
            parsed[rel] = parser.parse(text=path.read_text(encoding="utf-8"))
        except Exception as exc:  # report every file, not only the first failure
            errors[rel] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    azure_yaml_path = root / "azure.yaml"
    azure_yaml = yaml.safe_load(azure_yaml_path.read_text(encoding="utf-8")) if azure_yaml_path.exists() else None
    json.dump({"bicep": parsed, "errors": errors, "azure_yaml": azure_yaml}, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
