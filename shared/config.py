"""Settings, read once per process from the environment.

Azure Functions turns app settings (and ``local.settings.json`` locally) into environment variables,
so the environment is the single source. Every name read here is listed in
``infra/app-settings.json``; a test keeps the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# The front end of Azure Functions closes HTTP requests after 230 s whatever functionTimeout says;
# staying below it leaves room to answer with a proper 504 instead of a dropped connection.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 220.0


class ConfigurationError(ValueError):
    """A setting has a value the gateway cannot work with."""


def _split_csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_float(env, name, default))


def _bool(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    """What the gateway needs to know about its environment."""

    upstream_base_url: str
    api_key: str | None = None
    client_id: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    mcp_allowed_servers: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    cors_allowed_origins: frozenset[str] = frozenset()
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    retry_max_attempts: int = 4
    log_content: bool = False
    jobs_queue: str = "embedding-jobs"
    jobs_container: str = "embedding-jobs"
    jobs_table: str = "embeddingjobs"
    storage_connection: str = "AzureWebJobsStorage"

    @property
    def keyless(self) -> bool:
        return self.api_key is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        endpoint = env.get("AZURE_OPENAI_ENDPOINT", "").strip()
        base_url = env.get("OPENAI_BASE_URL", "").strip()
        if endpoint:
            upstream = endpoint.rstrip("/") + "/openai/v1/"
        elif base_url:
            upstream = base_url.rstrip("/") + "/"
        else:
            raise ConfigurationError(
                "No upstream configured: set AZURE_OPENAI_ENDPOINT (https://RESOURCE.openai.azure.com) "
                "or OPENAI_BASE_URL (any OpenAI-compatible v1 base URL)."
            )
        return cls(
            upstream_base_url=upstream,
            api_key=env.get("AZURE_OPENAI_API_KEY", "").strip() or None,
            client_id=env.get("AZURE_CLIENT_ID", "").strip() or None,
            models=parse_models(env.get("OPENAI_MODELS")),
            mcp_allowed_servers=tuple(_split_csv(env.get("MCP_ALLOWED_SERVERS"))),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES),
            cors_allowed_origins=frozenset(o.rstrip("/") for o in _split_csv(env.get("CORS_ALLOWED_ORIGINS"))),
            request_timeout_seconds=_float(env, "REQUEST_TIMEOUT_SECONDS", DEFAULT_REQUEST_TIMEOUT_SECONDS),
            retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", 4),
            log_content=_bool(env, "LOG_CONTENT"),
            jobs_queue=env.get("EMBEDDING_JOBS_QUEUE", "").strip() or "embedding-jobs",
            jobs_container=env.get("EMBEDDING_JOBS_CONTAINER", "").strip() or "embedding-jobs",
            jobs_table=env.get("EMBEDDING_JOBS_TABLE", "").strip() or "embeddingjobs",
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; read lazily so importing the app never fails on configuration."""
    return Settings.from_env()
