"""Fast in-process tests of the simulator's building blocks (no server process)."""

from __future__ import annotations

import math
import subprocess
import sys

import httpx
import pytest

from simulator import SimulatorConfig, create_app
from simulator.config import env_overrides
from simulator.embeddings_math import Embedder, to_floats
from simulator.faults import FaultQueue, parse_faults, route_key
from simulator.harness import PROJECT_ROOT
from simulator.limits import RateLimiter
from simulator.text import compose_reply, deltas, join_words, reply_words
from simulator.tokens import estimate_content, estimate_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_window_slides_and_reports_precise_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=100, clock=clock)
    assert limiter.try_acquire(60).allowed
    clock.now += 20
    assert limiter.try_acquire(30).allowed
    refused = limiter.try_acquire(20)
    assert not refused.allowed and refused.reason == "tokens"
    assert refused.retry_after_ms == 40_000  # the 60-token charge expires 40 s from now
    assert limiter.remaining() == (100_000, 10)
    clock.now += 40
    assert limiter.try_acquire(20).allowed
    too_big = limiter.try_acquire(101)
    assert not too_big.allowed and too_big.retry_after_ms == 60_000


def test_request_window_quota() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=30, rpm_window_s=10, clock=clock)  # 5 per 10 s
    for _ in range(5):
        assert limiter.try_acquire(0).allowed
        clock.now += 1
    refused = limiter.try_acquire(0)
    assert refused.reason == "requests" and refused.retry_after_ms == 5_000
    headers = dict(limiter.headers())
    assert headers[b"x-ratelimit-remaining-requests"] == b"0"
    assert headers[b"x-ratelimit-limit-requests"] == b"30"
    limiter.reset()
    assert limiter.try_acquire(0).allowed


def test_unlimited_limiter_always_admits() -> None:
    limiter = RateLimiter()
    assert all(limiter.try_acquire(10**9).allowed for _ in range(3))
    assert b"x-ratelimit-limit-tokens" not in dict(limiter.headers())


def test_fault_parsing_and_queue() -> None:
    assert route_key("/openai/v1/chat/completions") == "chat/completions"
    assert route_key("v1/embeddings") == "embeddings"
    faults = parse_faults({"faults": [{"kind": "status", "status": 503, "count": 2, "path": "/v1/responses"}]})
    assert faults[0].path == "responses"
    queue = FaultQueue()
    queue.add(faults)
    assert queue.take("chat/completions", None) is None
    assert queue.take("responses", "m") is faults[0]
    assert queue.pending()[0]["count"] == 1
    assert queue.take("responses", "m") is faults[0]
    assert not queue
    sticky = parse_faults([{"kind": "reset", "count": 0}])
    queue.add(sticky)
    assert all(queue.take("embeddings", None) is sticky[0] for _ in range(5))
    assert queue.pending()[0]["count"] == 0
    for bad in ({"kind": "boom"}, {"kind": "status", "status": 999}, {"kind": "hang", "seconds": -1}, "x"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_config_coercion() -> None:
    config = SimulatorConfig().patched({"ttft_ms": "12.5", "tpm": 10, "models": "a, b", "api_key": ""})
    assert config.ttft_ms == 12.5 and config.tpm == 10 and config.models == ["a", "b"] and config.api_key is None
    for patch in ({"tpm": -1}, {"tpm": "x"}, {"unknown": 1}, {"host": "0.0.0.0"}, {"models": []}, {"rpm": True}):
        with pytest.raises(ValueError):
            SimulatorConfig().patched(patch)
    assert env_overrides({"SIM_RPM": "7", "SIM_SEED": "3", "OTHER": "x"}) == {"rpm": 7, "seed": 3}


def test_token_estimates() -> None:
    assert [estimate_text(s) for s in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    parts = [{"type": "text", "text": "abcdefgh"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert estimate_content(parts) == 2 + 85
    assert estimate_content(None) == 0


def test_reply_text_is_deterministic_and_seeded() -> None:
    words = reply_words("user", "one two three", 0, 20)
    assert words == reply_words("user", "one two three", 0, 20)
    assert words != reply_words("user", "one two three", 1, 20)
    assert len(words) == 20 and words[:6] == ("Simulated", "reply", "to:", "one", "two", "three")
    assert "".join(deltas(words)) == join_words(words)
    long_lead = [f"w{i}" for i in range(30)]
    assert compose_reply(long_lead, "", 0, 20) == long_lead  # markers are never cut


def test_embedding_vectors() -> None:
    embedder = Embedder(seed=0)
    a, b, a2 = embedder.vectors("m", [b"alpha", b"beta", b"alpha"], 300)
    assert a == a2 and a != b and len(a) == 1200
    va, vb = to_floats(a), to_floats(b)
    assert math.isclose(math.sqrt(sum(x * x for x in va)), 1.0, abs_tol=1e-6)
    assert abs(sum(x * y for x, y in zip(va, vb, strict=True))) < 0.3
    assert embedder.vectors("other-model", [b"alpha"], 300)[0] != a
    assert Embedder(seed=1).vectors("m", [b"alpha"], 300)[0] != a
    (text,) = embedder.float_json("m", [b"alpha"], 300)
    assert text == ("[" + ",".join(repr(x) for x in va) + "]").encode()


async def test_in_process_app() -> None:
    app = create_app(SimulatorConfig(models=["m1"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        reply = await http.post(
            "/openai/v1/chat/completions",
            json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
            headers={"api-key": "k"},
        )
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"].startswith("Simulated reply to: hi")
        assert (await http.get("/health")).json() == {"status": "ok"}
    assert app.simulator.stats.counts == {"chat/completions": 1}


def test_cli_help_lists_every_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    for flag in (
        "--host",
        "--port",
        "--models",
        "--api-key",
        "--ttft-ms",
        "--token-delay-ms",
        "--tpm",
        "--rpm",
        "--seed",
    ):
        assert flag in result.stdout
    assert "SIM_TTFT_MS" in result.stdout
