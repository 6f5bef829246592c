"""Keyless auth: the shared client sends an Entra ID bearer token, cached and refreshed, never a key."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo

from shared.clients import COGNITIVE_SERVICES_SCOPE, build_openai_client, build_upstream
from shared.config import Settings
from simulator.stats import fingerprint
from tests.e2e.conftest import Sim


class CountingCredential:
    """Stands in for managed identity: hands out tokens and counts how often it is asked."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.calls: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        self.calls.append(scopes)
        return f"entra-token-{len(self.calls)}", int(time.time() + self.lifetime)

    async def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        token, expires = self._token(scopes)
        return AccessToken(token, expires)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token, expires = self._token(scopes)
        return AccessTokenInfo(token, expires)

    async def close(self) -> None:
        return None


# Both ways the gateway reaches the upstream must authenticate alike: its own hot path
# (shared.upstream_http, built by shared.clients.build_upstream) and the SDK client kept for back-end
# code (build_openai_client): same token provider, same caching and refresh, never a key.

async def _sdk_chat(client: Any) -> None:
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])


async def _relay_chat(client: Any) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}'
    response = await client.request("POST", "/chat/completions", headers={"content-type": "application/json"},
                                    content=body, stream=False, read_seconds=10.0)
    assert response.status_code == 200, response.content


Client = tuple[Callable[..., Any], Callable[[Any], Awaitable[None]]]
CLIENTS: dict[str, Client] = {"sdk": (build_openai_client, _sdk_chat), "gateway": (build_upstream, _relay_chat)}


@pytest.fixture(params=sorted(CLIENTS))
def client_kind(request: pytest.FixtureRequest) -> Client:
    return CLIENTS[request.param]


async def test_token_is_sent_as_bearer_and_cached(sim: Sim, client_kind: Client) -> None:
    build, chat = client_kind
    credential = CountingCredential(lifetime=3600)
    client = build(Settings(upstream_base_url=f"{sim.http.base_url}/openai/v1/"), credential=credential)
    for _ in range(3):
        await chat(client)
    assert credential.calls == [(COGNITIVE_SERVICES_SCOPE,)]
    records = sim.requests("chat/completions")
    assert [r["auth"] for r in records] == ["bearer"] * 3
    assert {r["auth_fingerprint"] for r in records} == {fingerprint("entra-token-1")}
    assert all("api-key" not in r["headers"] for r in records)
    await client.close()


async def test_token_close_to_expiry_is_refreshed(sim: Sim, client_kind: Client) -> None:
    build, chat = client_kind
    credential = CountingCredential(lifetime=60)  # inside the refresh window: every use asks again
    client = build(Settings(upstream_base_url=f"{sim.http.base_url}/openai/v1/"), credential=credential)
    await chat(client)
    await chat(client)
    assert len(credential.calls) >= 2
    latest = fingerprint(f"entra-token-{len(credential.calls)}")
    assert sim.requests("chat/completions")[-1]["auth_fingerprint"] == latest
    await client.close()
