"""Turn ``local.settings.json`` into environment variables, as Core Tools does.

Values from the file only fill gaps: a variable already present in the
environment wins, so tests, CI and ``devhost.stack`` can override any setting
without editing files. When ``local.settings.json`` is missing (it is
git-ignored) the committed ``local.settings.sample.json`` is used instead, so
a fresh clone runs with the documented defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.jsonfile import read_json_object

SETTINGS_FILE = "local.settings.json"
SAMPLE_SETTINGS_FILE = "local.settings.sample.json"


class SettingsError(ValueError):
    """The settings file exists but cannot be used."""


@dataclass(frozen=True)
class LocalSettings:
    """The ``Values`` and ``Host`` sections of a settings file."""

    values: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


def _as_setting(value: Any) -> str:
    # App settings are strings in Azure; JSON booleans are spelled the way
    # the host would read them back.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def settings_path(script_root: Path) -> Path | None:
    """The file that provides settings: the real one, else the sample, else None."""
    for name in (SETTINGS_FILE, SAMPLE_SETTINGS_FILE):
        candidate = script_root / name
        if candidate.is_file():
            return candidate
    return None


def read_local_settings(script_root: Path) -> LocalSettings:
    """Parse the settings file of a script root (empty settings when there is none)."""
    path = settings_path(script_root)
    if path is None:
        return LocalSettings()
    data = read_json_object(path, SettingsError)
    if data.get("IsEncrypted"):
        raise SettingsError(f"{path}: encrypted settings are not supported; set IsEncrypted to false")
    values = data.get("Values") or {}
    host = data.get("Host") or {}
    if not isinstance(values, dict) or not isinstance(host, dict):
        raise SettingsError(f"{path}: 'Values' and 'Host' must be objects")
    return LocalSettings(
        values={str(k): _as_setting(v) for k, v in values.items()},
        host=dict(host),
        source=path,
    )


def merged_settings(values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """What the process environment will look like: environment first, file second."""
    merged = dict(values)
    merged.update(environ)
    return merged


def apply_settings(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy settings into the environment without overriding; return the names set."""
    target = os.environ if environ is None else environ
    applied: list[str] = []
    for key, value in values.items():
        if key not in target:
            target[key] = value
            applied.append(key)
    return applied
