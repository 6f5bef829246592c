"""Soak: many concurrent streaming and plain requests with injected faults, bounded in time, loopback only.

Checks that nothing hangs past its deadline, every answer is a success or an OpenAI-shaped error,
and that the gateway's memory and open connections come back to their baseline afterwards.
``SOAK_SECONDS`` sets the length (default 45 s; the README's figures used longer runs).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import psutil
import pytest

from devhost.ports import free_ports
from devhost.stack import Stack
from shared.clients import UPSTREAM_KEEPALIVE_SECONDS
from tests.e2e.conftest import GATEWAY_ENV, ROOT

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "45"))
CONCURRENCY = 48
DEADLINE = 4.0  # REQUEST_TIMEOUT_SECONDS for this gateway
FAULTS = [
    {"kind": "status", "status": 429, "retry_after_ms": 50, "count": 5},
    {"kind": "status", "status": 503, "count": 3},
    {"kind": "drop_mid_stream", "after_chunks": 3, "count": 3},
    {"kind": "slow_first_byte", "ms": 300, "count": 3},
    {"kind": "hang", "seconds": 30, "count": 1},
    {"kind": "reset", "count": 2},
]


@pytest.fixture(scope="module")
def soak_stack() -> Iterator[Stack]:
    host, sim, blob, queue, table = free_ports(5)
    env = {**GATEWAY_ENV, "REQUEST_TIMEOUT_SECONDS": str(DEADLINE), "RETRY_MAX_ATTEMPTS": "3"}
    with Stack(ROOT, host, simulator=True, simulator_port=sim, simulator_args=["--token-delay-ms", "5"],
               azurite=True, azurite_ports=(blob, queue, table), env=env) as running:
        yield running


def host_process(stack: Stack) -> psutil.Process:
    assert stack.host is not None and stack.host.pid is not None
    return psutil.Process(stack.host.pid)


def established(process: psutil.Process, ports: tuple[int, ...]) -> int:
    """Open connections between the gateway and its callers or its upstream (not storage)."""
    return sum(1 for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_ESTABLISHED
               and (c.laddr.port in ports or (c.raddr and c.raddr.port in ports)))


async def one_request(client: httpx.AsyncClient, rng: random.Random, outcomes: Counter[str]) -> float:
    kind = rng.choice(["chat", "chat_stream", "responses_stream", "embeddings", "abandon_stream"])
    started = time.monotonic()
    if kind == "embeddings":
        response = await client.post("/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]})
        check(response, outcomes, kind)
    elif kind == "chat":
        response = await client.post("/chat/completions", json={"model": "gpt-4o-mini",
                                                                "messages": [{"role": "user", "content": "hi"}]})
        check(response, outcomes, kind)
    else:
        path, payload = ("/responses", {"model": "gpt-4o-mini", "input": "hi", "stream": True}) \
            if kind == "responses_stream" else \
            ("/chat/completions", {"model": "gpt-4o-mini", "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]})
        async with client.stream("POST", path, json=payload) as response:
            if response.status_code != 200:
                await response.aread()
                check(response, outcomes, kind)
            else:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if kind == "abandon_stream" and body.count(b"\n\n") >= 2:
                        break  # the caller goes away mid-stream
                if kind == "abandon_stream":
                    outcomes["abandoned"] += 1
                elif b"event: error" in body:
                    outcomes["stream_error_event"] += 1
                else:
                    assert body.rstrip().endswith((b"data: [DONE]", b"}")), body[-200:]
                    outcomes["stream_ok"] += 1
    return time.monotonic() - started


def check(response: httpx.Response, outcomes: Counter[str], kind: str) -> None:
    assert response.headers.get("x-request-id")
    if response.status_code == 200:
        outcomes[f"{kind}_ok"] += 1
        return
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    outcomes[f"http_{response.status_code}"] += 1


async def load(base_url: str, seconds: float, faults_url: str | None) -> tuple[Counter[str], list[float]]:
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=DEADLINE + 6, limits=limits) as client:
        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop_at:
                latencies.append(await one_request(client, rng, outcomes))

        async def fault_injector() -> None:
            rng = random.Random(7)
            async with httpx.AsyncClient(base_url=faults_url or "", timeout=5) as control:
                while faults_url and time.monotonic() < stop_at:
                    fault = {**rng.choice(FAULTS), "path": rng.choice(["chat/completions", "responses", "*"])}
                    (await control.post("/_sim/faults", json=fault)).raise_for_status()
                    await asyncio.sleep(0.5)

        await asyncio.gather(fault_injector(), *(worker(i) for i in range(CONCURRENCY)))
    return outcomes, latencies


def test_soak_with_faults_returns_to_baseline(soak_stack: Stack) -> None:
    base_url = f"{soak_stack.host_url}/api/v1"
    process = host_process(soak_stack)
    assert soak_stack.simulator_port is not None
    ports = (soak_stack.host_port, soak_stack.simulator_port)
    asyncio.run(load(base_url, 5, None))  # warm up: imports, pools, caches
    time.sleep(1)
    baseline_rss, baseline_conns = process.memory_info().rss, established(process, ports)

    outcomes, latencies = asyncio.run(load(base_url, SOAK_SECONDS, soak_stack.simulator_url))
    httpx.post(f"{soak_stack.simulator_url}/_sim/reset", json={}).raise_for_status()

    total = sum(outcomes.values())
    assert total > 500, outcomes
    assert outcomes["stream_ok"] and outcomes["stream_error_event"] and outcomes["abandoned"], outcomes
    assert any(k.startswith("http_") for k in outcomes), outcomes
    assert max(latencies) < DEADLINE + 3, "a request outlived its deadline"

    asyncio.run(load(base_url, 3, None))  # the same load without faults, then let idle pools settle
    # Idle pooled upstream connections may live until their keep-alive expires (how many depends on
    # the peak concurrency each phase happened to reach); a leaked one outlives it.
    deadline = time.monotonic() + UPSTREAM_KEEPALIVE_SECONDS + 10
    while time.monotonic() < deadline and established(process, ports) > baseline_conns + 4:
        time.sleep(0.5)
    rss = process.memory_info().rss
    print(f"\nsoak {SOAK_SECONDS:.0f}s: {total} requests {dict(outcomes)}; "
          f"rss {baseline_rss >> 20} -> {rss >> 20} MiB; connections {baseline_conns} -> {established(process, ports)}")
    assert established(process, ports) <= baseline_conns + 4
    assert rss < baseline_rss * 1.25 + (24 << 20), f"memory grew from {baseline_rss >> 20} to {rss >> 20} MiB"
