"""Attacks on the running local host: the gateway as a hostile caller who has read the source sees it.

Every module here starts its own stack (local Functions host + simulator + Azurite as real processes)
with the settings its attacks need, through :func:`start_stack`, and talks to it over real HTTP:
the official SDK where it would send the attack, httpx or raw sockets where the SDK would refuse to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from devhost.ports import free_ports
from devhost.stack import Stack
from tests.e2e.conftest import Sim

ROOT = Path(__file__).resolve().parents[2]

BASE_ENV = {
    "OPENAI_MODELS": "gpt-4o-mini,text-embedding-3-small,chat=gpt-4o-mini,embed=text-embedding-3-small",
    "MCP_ALLOWED_SERVERS": "https://mcp.example.test/api/mcp",
    "CORS_ALLOWED_ORIGINS": "https://app.example.test",
    "REQUEST_TIMEOUT_SECONDS": "20",
    "RETRY_MAX_ATTEMPTS": "2",
}


@contextlib.contextmanager
def start_stack(env: Mapping[str, str] | None = None) -> Iterator[tuple[Stack, Sim]]:
    """A fresh stack with ``BASE_ENV`` plus ``env``; yields it and the simulator's control API."""
    host, sim, blob, queue, table = free_ports(5)
    with Stack(ROOT, host, simulator=True, simulator_port=sim, azurite=True, azurite_ports=(blob, queue, table),
               env={**BASE_ENV, **(env or {})}) as running:
        assert running.simulator_url
        yield running, Sim(running.simulator_url)



# For modules whose module-scoped ``running`` fixture yields (an httpx client on /api/v1, the Sim):
# each test starts from a reset simulator, so its records show only what that test sent.
@pytest.fixture
def http(running: tuple[httpx.Client, Sim]) -> httpx.Client:
    running[1].reset()
    return running[0]


@pytest.fixture
def sim(running: tuple[httpx.Client, Sim], http: httpx.Client) -> Sim:
    return running[1]


def post(http: httpx.Client, path: str, raw: bytes) -> httpx.Response:
    """Raw bytes as a JSON request: what the SDKs would refuse to send (duplicate keys, odd escapes)."""
    return http.post(path, content=raw, headers={"content-type": "application/json"})


__all__ = ["BASE_ENV", "ROOT", "Sim", "post", "start_stack"]
