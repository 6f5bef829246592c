"""Reading the host's JSON files (host.json, local.settings.json) the way Core Tools does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: Path, error: type[Exception]) -> dict[str, Any]:
    """The file's top-level object; ``error`` with the path for invalid JSON or another shape.

    ``utf-8-sig`` because editors on Windows save these files with a byte-order mark.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object")
    return data
