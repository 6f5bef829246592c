"""Settings, read once per process from the environment.

Azure Functions turns app settings (and ``local.settings.json`` locally) into environment variables,
so the environment is the single source. Every name read here is listed in
``infra/app-settings.json``; a test keeps the two in step.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.lazy import process_wide

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Batch input uploads (POST /v1/files): Azure Functions refuses HTTP requests over 100 MB
# (104857600 bytes, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT's default), so larger inputs arrive as several
# files. 100000 lines is Azure OpenAI Global Batch's per-file limit.
DEFAULT_FILES_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_BATCH_MAX_LINES = 100_000
# The front end of Azure Functions closes HTTP requests after 230 s whatever functionTimeout says;
# staying below it leaves room to answer with a proper 504 instead of a dropped connection.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 220.0
# Output tokens a per-caller limit reserves for a chat or Responses call that sets no output cap.
# 4096 was the output ceiling of GPT-4 Turbo and of GPT-4o before 2024-08, and chat replies are
# nearly always shorter, so a reply rarely outruns its reservation (the only way concurrent calls
# overshoot a limit). The price: such a call needs ~4k tokens of the minute left to be admitted;
# callers that send max_tokens reserve exactly that instead. See README "Token limits".
DEFAULT_CALLER_OUTPUT_TOKEN_ALLOWANCE = 4096
# Embedding jobs leave this share of a deployment's rate limit to interactive requests.
DEFAULT_JOBS_INTERACTIVE_SHARE = 0.2
# An embedding job keeps retrying (outages, throttling) for this long before it ends failed.
DEFAULT_JOBS_TIME_BUDGET_HOURS = 6.0
# How long a finished job or batch, its data, and a file without its own expiry are kept (then
# answered 404 and deleted by the retention sweep, shared/jobs/sweeper.py). OpenAI keeps batch files
# until deleted; 30 days bounds what an unattended gateway accumulates.
DEFAULT_DATA_RETENTION_DAYS = 30.0
# A batch ends ``expired`` (finished lines kept) when it has not finished this long after creation:
# OpenAI's only completion window is 24h; tests shorten it.
DEFAULT_BATCH_COMPLETION_WINDOW_SECONDS = 24 * 3600.0


class ConfigurationError(ValueError):
    """A setting has a value the gateway cannot work with."""


def _split_csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


_ORIGIN = re.compile(r"https?://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def parse_origins(value: str | None, setting: str) -> tuple[str, ...]:
    """Comma-separated web origins (``scheme://host[:port]``), lower-cased.

    These end up in a Content-Security-Policy header and in HTML, so an entry that is not a plain
    origin (a path, a quote, a semicolon, a wildcard) fails loudly instead of being trimmed or used.
    """
    origins: list[str] = []
    for item in _split_csv(value):
        origin = item.rstrip("/").lower()
        if not _ORIGIN.fullmatch(origin):
            raise ConfigurationError(f"{setting} entry {item!r} is not an origin like https://host or http://host:port")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def parse_models(value: str | None) -> dict[str, str]:
    """Parse ``OPENAI_MODELS``: ``name`` allows a deployment, ``alias=deployment`` adds an alias.

    Returns a map from every name a caller may send to the deployment it reaches.
    """
    models: dict[str, str] = {}
    for item in _split_csv(value):
        alias, sep, deployment = item.partition("=")
        alias, deployment = alias.strip(), deployment.strip()
        if sep and not (alias and deployment):
            raise ConfigurationError(f"OPENAI_MODELS entry {item!r} must be 'name' or 'alias=deployment'")
        models[alias] = deployment if sep else alias
    return models


def _number(env: Mapping[str, str], name: str, default: float, *, valid: Callable[[float], bool] = lambda v: v > 0,
            rule: str = "be positive") -> float:
    """A number setting (``default`` when unset) that must satisfy ``valid`` (said as ``rule``)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if not valid(value):
        raise ConfigurationError(f"{name} must {rule}, got {raw!r}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_float(env, name, default))


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    """A fraction in [0, 1) (``default`` when unset)."""
    return _number(env, name, default, valid=lambda v: 0.0 <= v < 1.0, rule="be at least 0 and below 1")


def _optional_limit(env: Mapping[str, str], name: str) -> int:
    """A positive limit, or 0 (off) when unset or "0"."""
    return 0 if env.get(name, "").strip() in {"", "0"} else _int(env, name, 0)


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 0 (``default`` when unset)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number >= 0, got {raw!r}")
    return int(raw)


def _bool(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One upstream (an Azure OpenAI resource or any OpenAI-compatible v1 base URL).

    Lower ``priority`` is tried first (e.g. PTU 0, pay-as-you-go 1, another region 2); ``weight``
    spreads load between backends of equal priority.
    """

    name: str
    base_url: str
    api_key: str | None = None
    priority: int = 0
    weight: float = 1.0


def _base_url(endpoint: str | None, base_url: str | None) -> str | None:
    if endpoint:
        return endpoint.rstrip("/") + "/openai/v1/"
    if base_url:
        return base_url.rstrip("/") + "/"
    return None


def parse_backends(value: str, env: Mapping[str, str]) -> tuple[BackendConfig, ...]:
    """Parse ``OPENAI_BACKENDS``: a JSON list of ``{"name", "endpoint"|"base_url", "priority"?,
    "weight"?, "api_key_setting"?}``. Keys are never inline: ``api_key_setting`` names the setting
    (a Key Vault reference in Azure) that holds one; without it the backend is keyless."""
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"OPENAI_BACKENDS is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise ConfigurationError("OPENAI_BACKENDS must be a non-empty JSON list of backends")
    backends: list[BackendConfig] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigurationError(f"OPENAI_BACKENDS[{index}] must be an object")
        url = _base_url(item.get("endpoint"), item.get("base_url"))
        if url is None:
            raise ConfigurationError(f"OPENAI_BACKENDS[{index}] needs 'endpoint' or 'base_url'")
        key_setting = item.get("api_key_setting")
        api_key = env.get(key_setting, "").strip() or None if isinstance(key_setting, str) else None
        try:
            priority, weight = int(item.get("priority", 0)), float(item.get("weight", 1.0))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"OPENAI_BACKENDS[{index}]: priority and weight must be numbers") from exc
        if weight <= 0:
            raise ConfigurationError(f"OPENAI_BACKENDS[{index}]: weight must be positive")
        backends.append(BackendConfig(str(item.get("name") or f"backend{index}"), url, api_key, priority, weight))
    if len({b.name for b in backends}) != len(backends):
        raise ConfigurationError("OPENAI_BACKENDS names must be unique")
    return tuple(backends)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the gateway needs to know about its environment."""

    upstream_base_url: str
    api_key: str | None = None
    client_id: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    mcp_allowed_servers: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # Batch files: the largest upload and the most lines one batch input file may hold.
    files_max_bytes: int = DEFAULT_FILES_MAX_BYTES
    batch_max_lines: int = DEFAULT_BATCH_MAX_LINES
    cors_allowed_origins: frozenset[str] = frozenset()
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    retry_max_attempts: int = 4
    log_content: bool = False
    jobs_queue: str = "embedding-jobs"
    jobs_container: str = "embedding-jobs"
    jobs_table: str = "embeddingjobs"
    # Embedding jobs: the share of each deployment's rate limit left to interactive callers, and how
    # long a job may keep retrying through outages and throttling before it ends failed.
    jobs_interactive_share: float = DEFAULT_JOBS_INTERACTIVE_SHARE
    jobs_time_budget_seconds: float = DEFAULT_JOBS_TIME_BUDGET_HOURS * 3600
    # Models (as callers name them) embedding jobs may use; empty: any whose name says "embedding".
    jobs_models: tuple[str, ...] = ()
    data_retention_seconds: float = DEFAULT_DATA_RETENTION_DAYS * 86400
    batch_completion_window_seconds: float = DEFAULT_BATCH_COMPLETION_WINDOW_SECONDS
    retry_max_wait_seconds: float = 5.0
    caller_tokens_per_minute: int = 0
    caller_output_token_allowance: int = DEFAULT_CALLER_OUTPUT_TOKEN_ALLOWANCE
    extra_backends: tuple[BackendConfig, ...] = ()

    @property
    def backends(self) -> tuple[BackendConfig, ...]:
        """The upstreams in configuration order: ``OPENAI_BACKENDS``, else the single endpoint."""
        return self.extra_backends or (BackendConfig("default", self.upstream_base_url, self.api_key),)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        raw_backends = env.get("OPENAI_BACKENDS", "").strip()
        backends = parse_backends(raw_backends, env) if raw_backends else ()
        upstream = _base_url(env.get("AZURE_OPENAI_ENDPOINT", "").strip(), env.get("OPENAI_BASE_URL", "").strip())
        if upstream is None and backends:
            upstream = backends[0].base_url
        if upstream is None:
            raise ConfigurationError(
                "No upstream configured: set AZURE_OPENAI_ENDPOINT (https://RESOURCE.openai.azure.com) "
                "or OPENAI_BASE_URL (any OpenAI-compatible v1 base URL), or OPENAI_BACKENDS."
            )
        return cls(
            upstream_base_url=upstream,
            api_key=env.get("AZURE_OPENAI_API_KEY", "").strip() or None,
            client_id=env.get("AZURE_CLIENT_ID", "").strip() or None,
            models=parse_models(env.get("OPENAI_MODELS")),
            mcp_allowed_servers=tuple(_split_csv(env.get("MCP_ALLOWED_SERVERS"))),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES),
            files_max_bytes=_int(env, "FILES_MAX_BYTES", DEFAULT_FILES_MAX_BYTES),
            batch_max_lines=_int(env, "BATCH_MAX_LINES", DEFAULT_BATCH_MAX_LINES),
            cors_allowed_origins=frozenset(o.rstrip("/") for o in _split_csv(env.get("CORS_ALLOWED_ORIGINS"))),
            request_timeout_seconds=_float(env, "REQUEST_TIMEOUT_SECONDS", DEFAULT_REQUEST_TIMEOUT_SECONDS),
            retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", 4),
            retry_max_wait_seconds=_float(env, "RETRY_MAX_WAIT_SECONDS", 5.0),
            extra_backends=backends,
            caller_tokens_per_minute=_optional_limit(env, "CALLER_TOKENS_PER_MINUTE"),
            caller_output_token_allowance=_count(env, "CALLER_OUTPUT_TOKEN_ALLOWANCE",
                                                 DEFAULT_CALLER_OUTPUT_TOKEN_ALLOWANCE),
            log_content=_bool(env, "LOG_CONTENT"),
            jobs_queue=env.get("EMBEDDING_JOBS_QUEUE", "").strip() or "embedding-jobs",
            jobs_container=env.get("EMBEDDING_JOBS_CONTAINER", "").strip() or "embedding-jobs",
            jobs_table=env.get("EMBEDDING_JOBS_TABLE", "").strip() or "embeddingjobs",
            jobs_interactive_share=_share(env, "EMBEDDING_JOBS_INTERACTIVE_SHARE", DEFAULT_JOBS_INTERACTIVE_SHARE),
            jobs_time_budget_seconds=_float(env, "EMBEDDING_JOBS_TIME_BUDGET_HOURS",
                                            DEFAULT_JOBS_TIME_BUDGET_HOURS) * 3600,
            jobs_models=tuple(_split_csv(env.get("EMBEDDING_JOBS_MODELS"))),
            data_retention_seconds=_float(env, "DATA_RETENTION_DAYS", DEFAULT_DATA_RETENTION_DAYS) * 86400,
            batch_completion_window_seconds=_float(env, "BATCH_COMPLETION_WINDOW_SECONDS",
                                                   DEFAULT_BATCH_COMPLETION_WINDOW_SECONDS),
        )


@process_wide
def get_settings() -> Settings:
    """The process-wide settings; read lazily so importing the app never fails on configuration."""
    return Settings.from_env()
