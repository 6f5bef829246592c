"""Keeps the benchmarks working: the load generator against a real simulator for about two
seconds, its HTTP parsing, and the check that must catch a buffering relay. No timing assertions:
the machine is shared, so only the shape and sanity of the figures are checked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from bench import report, scenarios
from bench.loadgen import Connection
from bench.servers import Target
from bench.stats import difference, percentile, summarize
from simulator.harness import SimulatorProcess


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess.start("--ttft-ms", "5", "--token-delay-ms", "2") as running:
        yield running


def _target(sim: SimulatorProcess) -> Target:
    return Target("direct", f"{sim.api_url}/chat/completions", ["api-key: smoke"], None)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_load_generator_against_the_simulator(sim: SimulatorProcess, stream: bool) -> None:
    result = scenarios.run_loadgen(_target(sim), body=scenarios.request_body(stream, 8), concurrency=4,
                                   warmup=0.2, duration=1.0, watch={"simulator": sim.proc.pid}, cpu=None)
    assert result["errors"] == 0 and result["statuses"] == {"200": result["completed"]}
    assert result["completed"] > 0 and result["rps"] > 0
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert set(result["cpu_s"]) == {"simulator", "loadgen"}
    if stream:
        # role + 8 content chunks + finish + [DONE] per response, gaps between them
        assert result["events"] == 11 * result["completed"]
        assert result["gap_ms"]["count"] == 10 * result["completed"]
        assert result["first_event_ms"]["p50"] <= latency["p50"]
    else:
        assert result["first_event_ms"] == {"count": 0}


def _feed(pieces: list[bytes]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        conn = Connection(loop)

        class _Transport:
            def write(self, data: bytes) -> None:
                pass

        conn.transport = _Transport()
        future = conn.request(b"")
        for piece in pieces:
            conn.data_received(piece)
        assert future.done()
        return future.result()
    finally:
        loop.close()


def test_chunked_sse_parsing_survives_any_split() -> None:
    body = b"data: a\n\n" * 3
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-gateway-overhead-ms: 0.250\r\n\r\n"
           + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    for cut in range(1, len(raw)):
        response = _feed([raw[:cut], raw[cut:]])
        assert response.status == 200 and response.events == 3 and response.overhead == 0.25
    whole = _feed([raw])
    assert whole.gaps == [0.0, 0.0]  # three events in one read: no time between them


def test_content_length_response() -> None:
    response = _feed([b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nno", b"ne!"])
    assert response.status == 404 and response.events == 0


def _summary(p50: float, p99: float) -> dict[str, Any]:
    return {"count": 100, "p50": p50, "p90": p99, "p95": p99, "p99": p99}


def test_relay_check_fails_a_buffering_relay() -> None:
    direct = {"gap_ms": _summary(10.0, 11.0), "first_event_ms": _summary(20.0, 22.0), "latency_ms": _summary(170, 175)}
    relaying = {"gap_ms": _summary(10.0, 12.0), "first_event_ms": _summary(21.0, 24.0)}
    buffering = {"gap_ms": _summary(0.0, 0.1), "first_event_ms": _summary(171.0, 176.0)}
    assert scenarios.relay_verdict(relaying, direct)["ok"]
    verdict = scenarios.relay_verdict(buffering, direct)
    assert not verdict["ok"] and verdict["state"] == "buffers" and "bursts" in verdict["why"]
    overloaded = {**buffering, "rps": 40.0}
    assert scenarios.relay_verdict(overloaded, {**direct, "rps": 80.0})["state"] == "saturated"


def test_stats() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    summary = summarize([0.001, 0.002, 0.003], scale=1000.0)
    assert summary["count"] == 3 and summary["p50"] == 2.0
    assert difference(_summary(5.0, 9.0), _summary(4.0, 6.0))["p99"] == 3.0
    assert report._f(None) == "-"
