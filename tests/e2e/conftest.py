"""End-to-end fixtures: the local Functions host, the simulator and Azurite as real processes.

One stack serves the whole module set; each test resets the simulator (faults, stats, config) so
tests stay independent. Ports are always chosen free: other suites may run on this machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devhost.ports import free_ports
from devhost.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
MAX_REQUEST_BYTES = 256 * 1024
ALLOWED_ORIGIN = "https://app.example.test"
ALLOWED_MCP = "https://mcp.example.test/api"

GATEWAY_ENV = {
    "OPENAI_MODELS": "gpt-4o-mini,text-embedding-3-small,chat=gpt-4o-mini,embed=text-embedding-3-small",
    "MCP_ALLOWED_SERVERS": ALLOWED_MCP,
    "CORS_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
    "MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    "REQUEST_TIMEOUT_SECONDS": "20",
    "RETRY_MAX_ATTEMPTS": "3",
}


@contextlib.contextmanager
def running_stack(env: Mapping[str, str]) -> Iterator[Stack]:
    """The local host, the simulator and Azurite as processes on free ports, with ``env`` as settings."""
    host, sim, blob, queue, table = free_ports(5)
    with Stack(ROOT, host, simulator=True, simulator_port=sim, azurite=True, azurite_ports=(blob, queue, table),
               env=dict(env)) as running:
        yield running


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack(GATEWAY_ENV) as running:
        yield running


class Sim:
    """The simulator's control API (``/_sim``): faults, live config, and what it received."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def reset(self) -> None:
        self.http.post("/_sim/reset", json={"config": True}).raise_for_status()

    def configure(self, **fields: Any) -> None:
        self.http.post("/_sim/config", json=fields).raise_for_status()

    def fault(self, **spec: Any) -> None:
        self.http.post("/_sim/faults", json=spec).raise_for_status()

    def stats(self, route: str | None = None) -> dict[str, Any]:
        params = {"route": route} if route else {}
        response = self.http.get("/_sim/stats", params=params)
        response.raise_for_status()
        return response.json()

    def requests(self, route: str) -> list[dict[str, Any]]:
        return self.stats(route)["recent"]


@pytest.fixture(scope="session")
def sim_control(stack: Stack) -> Sim:
    assert stack.simulator_url
    return Sim(stack.simulator_url)


@pytest.fixture
def sim(sim_control: Sim) -> Sim:
    sim_control.reset()
    return sim_control


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    return f"{stack.host_url}/api/v1"


@pytest.fixture
def client(base_url: str, sim: Sim) -> openai.OpenAI:
    """The official SDK, pointed at the gateway; any key (the local host, like Core Tools, skips keys)."""
    return openai.OpenAI(base_url=base_url, api_key="local", max_retries=0)


@pytest.fixture
def aclient(base_url: str, sim: Sim) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="local", max_retries=0)


@pytest.fixture
def http(stack: Stack, sim: Sim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.host_url, timeout=30) as client:
        yield client
