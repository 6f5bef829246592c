"""Process-wide upstream clients, one per backend, keyless by default.

Functions reuses a worker process for many invocations, so clients (their connection pools and token
caches) are built once, on first use, never per request. Two kinds, with one rule for credentials:
an API key when the backend names one, else the app's Entra ID identity from :mod:`shared.identity`
(shared with storage), whose token provider caches and refreshes the token.

- :func:`get_upstream`: what every gateway request goes through (:mod:`shared.upstream_http`, raw
  aiohttp; the gateway relays bytes, so the SDK's models would only cost time).
- :func:`build_openai_client`: an ``AsyncOpenAI`` with the same credentials, for code that wants the
  SDK's typed surface (scripts, tools, tests) rather than relayed bytes.

Heavy imports (azure.identity, openai) happen only when a client of that kind is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared import identity
from shared.config import BackendConfig, Settings, get_settings
from shared.identity import COGNITIVE_SERVICES_SCOPE
from shared.lazy import on_forget
from shared.upstream_http import MAX_CONNECTIONS, UPSTREAM_KEEPALIVE_SECONDS, TokenProvider, UpstreamHttp

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from openai import AsyncOpenAI

__all__ = ["COGNITIVE_SERVICES_SCOPE", "UPSTREAM_KEEPALIVE_SECONDS", "build_openai_client", "build_upstream",
           "close_clients", "forget_clients", "get_upstream"]

_upstreams: dict[str, UpstreamHttp] = {}


def _token_provider(settings: Settings, credential: AsyncTokenCredential | None) -> TokenProvider:
    return identity.openai_token_provider(credential or identity.credential(identity.for_app(settings.client_id)))


def build_upstream(settings: Settings, backend: BackendConfig | None = None,
                   credential: AsyncTokenCredential | None = None) -> UpstreamHttp:
    """The hot-path client for a backend (the first by default): its key, or the app's identity."""
    backend = backend or settings.backends[0]
    if backend.api_key is not None:
        return UpstreamHttp(backend.base_url, api_key=backend.api_key)
    return UpstreamHttp(backend.base_url, token=_token_provider(settings, credential))


def get_upstream(backend: BackendConfig | None = None) -> UpstreamHttp:
    """The process's client for a backend (the first by default), built on first use and reused."""
    settings = get_settings()
    backend = backend or settings.backends[0]
    found = _upstreams.get(backend.name)
    if found is None:
        found = _upstreams[backend.name] = build_upstream(settings, backend)
    return found


def forget_clients() -> None:
    """Drop the cached clients without closing them (a synchronous test reset; prefer :func:`close_clients`)."""
    _upstreams.clear()


on_forget(forget_clients)


async def close_clients() -> None:
    """Close and forget the cached clients (shutdown)."""
    found = list(_upstreams.values())
    _upstreams.clear()
    for client in found:
        await client.close()


def build_openai_client(
    settings: Settings, credential: AsyncTokenCredential | None = None, backend: BackendConfig | None = None
) -> AsyncOpenAI:
    """An ``AsyncOpenAI`` for the Azure OpenAI v1 API (or any OpenAI-compatible base URL).

    Same credentials as :func:`build_upstream`. The SDK's retries are off (``max_retries=0``): code
    that needs retries should go through :func:`shared.upstream.send`, the one retry loop.
    """
    import httpx2
    from openai import AsyncOpenAI, DefaultAioHttpClient

    backend = backend or settings.backends[0]
    headers: dict[str, str] = {}
    api_key: Any
    if backend.api_key is not None:
        api_key = backend.api_key
        # Azure's v1 API accepts the key as a bearer token; the api-key header is its native form.
        headers["api-key"] = backend.api_key
    else:
        api_key = _token_provider(settings, credential)
    http_client = DefaultAioHttpClient(
        limits=httpx2.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=200,
                             keepalive_expiry=UPSTREAM_KEEPALIVE_SECONDS),
        timeout=httpx2.Timeout(settings.request_timeout_seconds, connect=5.0),
    )
    return AsyncOpenAI(base_url=backend.base_url, api_key=api_key, max_retries=0, default_headers=headers,
                       http_client=http_client)
