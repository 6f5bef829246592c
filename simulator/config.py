"""Simulator settings: one dataclass shared by the CLI, the environment and the live `/_sim/config` patch.

Every field can be set three ways, later ones winning: the dataclass default, an environment
variable ``SIM_<FIELD>`` (e.g. ``SIM_TTFT_MS=300``), and a CLI flag ``--<field-with-dashes>``
(e.g. ``--ttft-ms 300``). Keeping one coercion routine for all three means a value that works in
one place works in the others, and tests can patch a running simulator with the same names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)

# Fields fixed once the socket is bound; patching them at run time would be a lie.
BIND_FIELDS = frozenset({"host", "port", "log_level"})


@dataclass
class SimulatorConfig:
    """Live configuration of one simulator instance (mutable only through `patched`)."""

    host: str = field(default="127.0.0.1", metadata={"help": "interface to bind"})
    port: int = field(default=7072, metadata={"help": "TCP port (0 = pick a free one; the ready line shows it)"})
    models: list[str] = field(
        default_factory=lambda: list(DEFAULT_MODELS),
        metadata={"help": "comma-separated deployment names accepted in `model`"},
    )
    api_key: str | None = field(
        default=None,
        metadata={"help": "required key (api-key header or Bearer token); unset = any non-empty key"},
    )
    ttft_ms: float = field(default=0.0, metadata={"help": "delay before the first generated token"})
    token_delay_ms: float = field(default=0.0, metadata={"help": "delay between streamed tokens"})
    tpm: int = field(default=0, metadata={"help": "tokens-per-minute limit (0 = unlimited)"})
    rpm: int = field(default=0, metadata={"help": "requests-per-minute limit (0 = unlimited)"})
    rpm_window_s: float = field(
        default=10.0,
        metadata={"help": "RPM is enforced as ceil(rpm*window/60) requests per sliding window of this size"},
    )
    seed: int = field(default=0, metadata={"help": "mixed into reply text and embedding hashes"})
    reply_tokens: int = field(default=20, metadata={"help": "natural reply length in tokens (words)"})
    omit_usage: bool = field(
        default=False,
        metadata={"help": "report no token usage (chat: usage null, no usage chunk; responses: usage null)"},
    )
    embedding_format: str | None = field(
        default=None,
        metadata={"help": "answer embeddings in this encoding (float or base64) whatever encoding_format asked, "
                  "like an OpenAI-compatible upstream that ignores it; unset = as asked"},
    )
    content_filter_annotations: bool = field(
        default=False,
        metadata={"help": "annotate every chat reply with Azure's content-filter results (prompt_filter_results, "
                  "per-choice content_filter_results, and a first stream chunk with empty choices)"},
    )
    max_stored_responses: int = field(default=10000, metadata={"help": "stored /responses kept (oldest evicted)"})
    recent_requests: int = field(default=1000, metadata={"help": "request records kept for /_sim/stats"})
    log_level: str = field(default="warning", metadata={"help": "uvicorn log level"})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able view, used by `/_sim/config`."""
        return dataclasses.asdict(self)

    def patched(self, patch: Mapping[str, Any]) -> SimulatorConfig:
        """Return a copy with `patch` applied; raise ValueError on unknown, fixed or ill-typed fields."""
        changes: dict[str, Any] = {}
        for name, raw in patch.items():
            if name not in FIELD_TYPES:
                raise ValueError(f"unknown config field '{name}'")
            if name in BIND_FIELDS:
                raise ValueError(f"config field '{name}' cannot be changed at run time")
            changes[name] = coerce(name, raw)
        return dataclasses.replace(self, **changes)


FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(SimulatorConfig)}
# Fields that only take a few values (checked wherever a value comes from).
CHOICES: dict[str, tuple[str, ...]] = {"embedding_format": ("float", "base64")}


def coerce(name: str, raw: object) -> Any:
    """Convert a CLI/env string or a JSON value to the type of field `name`."""
    kind = FIELD_TYPES[name]
    if kind == "list[str]":
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"'{name}' must be a list of strings or a comma-separated string")
        names = [i.strip() for i in items if i.strip()]
        if not names:
            raise ValueError(f"'{name}' must name at least one deployment")
        return names
    if kind == "str | None":
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise ValueError(f"'{name}' must be a string or null")
        if name in CHOICES and raw not in CHOICES[name]:
            raise ValueError(f"'{name}' must be one of {', '.join(CHOICES[name])} or null")
        return raw
    if kind == "str":
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"'{name}' must be a non-empty string")
        return raw
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        raise ValueError(f"'{name}' must be true or false")
    if kind in ("int", "float"):
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError(f"'{name}' must be a number")
        try:
            value: float = int(raw) if kind == "int" else float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"'{name}' must be a{'n integer' if kind == 'int' else ' number'}") from None
        if value < 0:
            raise ValueError(f"'{name}' must be >= 0")
        return value
    raise AssertionError(f"unhandled config type {kind}")  # pragma: no cover


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Collect `SIM_<FIELD>` variables as typed values."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name in FIELD_TYPES:
        key = "SIM_" + name.upper()
        if key in env:
            try:
                found[name] = coerce(name, env[key])
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
    return found
