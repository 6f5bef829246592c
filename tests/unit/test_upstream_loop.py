"""The upstream loop (:func:`shared.upstream.send`) with a scripted transport and a fake clock:
which backend each attempt goes to, what it waits, what the caller is told, and that the pool
learns cool-downs from failures. The real transport is covered end to end (tests/e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import pytest

from shared import upstream
from shared.backends import BackendPool
from shared.config import BackendConfig
from shared.context import RequestContext
from shared.deadline import Deadline
from shared.errors import GatewayError, UpstreamError
from shared.retry import RetryPolicy
from tests.fakes import FakeClock

A = BackendConfig("a", "http://a/v1/", priority=0)
B = BackendConfig("b", "http://b/v1/", priority=1)


@dataclass
class Reply:
    status_code: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b"{}"
    fail_after: list[bytes] | None = None  # a streamed body that breaks after these chunks

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self.fail_after or []:
            yield chunk
        raise aiohttp.ClientPayloadError("Response payload is not completed")

    async def aclose(self) -> None:
        return None


class Script:
    """Per backend, what each attempt gets: a reply, or an exception raised by the transport."""

    def __init__(self, **outcomes: list[Reply | BaseException]) -> None:
        self.outcomes = outcomes
        self.calls: list[str] = []

    def client(self, backend: BackendConfig) -> Script.Client:
        return Script.Client(self, backend.name)

    class Client:
        def __init__(self, script: Script, name: str) -> None:
            self.script, self.name = script, name

        async def request(self, method: str, path: str, **_: object) -> Reply:
            self.script.calls.append(self.name)
            outcome = self.script.outcomes[self.name].pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()

    async def wait(ctx: RequestContext, seconds: float) -> None:
        await clock.sleep(seconds)

    monkeypatch.setattr(upstream, "_wait", wait)
    return clock


def wire(monkeypatch: pytest.MonkeyPatch, clock: FakeClock, script: Script, *backends: BackendConfig,
         policy: RetryPolicy | None = None) -> BackendPool:
    pool = BackendPool(backends, clock=clock, rng=lambda: 0.0)
    monkeypatch.setattr(upstream, "get_backend_pool", lambda: pool)
    monkeypatch.setattr(upstream, "get_retry_policy", lambda: policy or RetryPolicy(max_attempts=3))
    monkeypatch.setattr(upstream, "get_upstream", script.client)
    return pool


def context(clock: FakeClock, seconds: float = 100.0) -> RequestContext:
    ctx = RequestContext.new(seconds)
    ctx.deadline = Deadline.after(seconds, clock)
    ctx.model = "chat"
    return ctx


async def test_a_5xx_is_retried_after_a_backoff(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    script = Script(a=[Reply(503), Reply(200)])
    wire(monkeypatch, clock, script, A)
    ctx = context(clock)
    response = await upstream.send(ctx, "POST", "/chat/completions", content=b"{}")
    assert response.status_code == 200 and script.calls == ["a", "a"]
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] < 0.5
    assert ctx.attempts == 2 and ctx.upstream_status == 200


async def test_a_429_storm_ends_with_the_last_upstream_answer(monkeypatch: pytest.MonkeyPatch,
                                                              clock: FakeClock) -> None:
    throttled = {"retry-after-ms": "100"}
    script = Script(a=[Reply(429, throttled), Reply(429, throttled), Reply(429, {"retry-after-ms": "150"})])
    wire(monkeypatch, clock, script, A)
    with pytest.raises(UpstreamError) as info:
        await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}")
    assert info.value.response.headers["retry-after-ms"] == "150"
    assert clock.sleeps == [0.1, 0.1] and len(script.calls) == 3


async def test_a_stream_that_fails_after_it_began_is_not_retried(monkeypatch: pytest.MonkeyPatch,
                                                                 clock: FakeClock) -> None:
    script = Script(a=[Reply(200, fail_after=[b"data: 1\n\n"]), Reply(200)])
    wire(monkeypatch, clock, script, A)
    response = await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}", stream=True)
    received = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in response.aiter_bytes():
            received.append(chunk)
    assert received == [b"data: 1\n\n"] and script.calls == ["a"]


async def test_unclassified_errors_propagate_at_once(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    script = Script(a=[KeyError("bug"), Reply(200)])
    wire(monkeypatch, clock, script, A)
    with pytest.raises(KeyError):
        await upstream.send(context(clock), "GET", "/responses/r")
    assert script.calls == ["a"] and clock.sleeps == []


async def test_lost_connections_are_unreachable_and_timeouts_are_timeouts(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    refused = aiohttp.ClientConnectionError("refused")
    wire(monkeypatch, clock, Script(a=[refused, refused, refused]), A)
    with pytest.raises(GatewayError) as lost:
        await upstream.send(context(clock), "GET", "/responses/r")
    assert (lost.value.status, lost.value.code) == (502, "upstream_unreachable")
    stalled = aiohttp.ServerTimeoutError("Timeout on reading data from socket")
    wire(monkeypatch, clock, Script(a=[refused, stalled]), A, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(GatewayError) as late:
        await upstream.send(context(clock), "GET", "/responses/r")
    assert (late.value.status, late.value.code) == (504, "upstream_timeout")


async def test_failover_goes_at_once_and_the_pool_learns_the_cool_down(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    script = Script(a=[Reply(429, {"retry-after-ms": "1500"})], b=[Reply(200), Reply(200)])
    pool = wire(monkeypatch, clock, script, A, B)
    await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}")
    assert script.calls == ["a", "b"] and clock.sleeps == []
    assert pool.ready_in("chat", pinned="a") == 1.5
    await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}")
    assert script.calls == ["a", "b", "b"]  # still cooling: the primary is not asked


async def test_all_cooling_is_429_with_the_soonest_recovery_and_no_upstream_call(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    script = Script(a=[], b=[])
    pool = wire(monkeypatch, clock, script, A, B, policy=RetryPolicy(max_attempts=3, max_retry_after=1.0))
    pool.cool(A, "chat", 3.0)
    pool.cool(B, "chat", 2.0)
    with pytest.raises(GatewayError) as info:
        await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}")
    assert info.value.status == 429 and info.value.headers["retry-after-ms"] == "2000"
    assert script.calls == [] and clock.sleeps == []


async def test_a_cool_down_about_to_end_is_waited_out(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    script = Script(a=[Reply(200)])
    pool = wire(monkeypatch, clock, script, A)
    pool.cool(A, "chat", 0.1)
    await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}")
    assert script.calls == ["a"] and clock.sleeps == [pytest.approx(0.102)]


async def test_a_404_while_probing_looks_on_the_next_backend(monkeypatch: pytest.MonkeyPatch,
                                                             clock: FakeClock) -> None:
    script = Script(a=[Reply(404)], b=[Reply(200)])
    pool = wire(monkeypatch, clock, script, A, B)
    await upstream.send(context(clock), "GET", "/responses/r", probe_not_found=True)
    assert script.calls == ["a", "b"] and pool.pick("chat", set()) == A  # a 404 is not a health problem
    script = Script(a=[Reply(404)], b=[Reply(404)])
    wire(monkeypatch, clock, script, A, B)
    with pytest.raises(UpstreamError) as info:
        await upstream.send(context(clock), "GET", "/responses/r", probe_not_found=True)
    assert info.value.response.status_code == 404 and script.calls == ["a", "b"]


async def test_running_out_of_budget_is_final(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    class Hang:
        async def request(self, *args: object, **kwargs: object) -> Reply:
            import asyncio

            await asyncio.sleep(10)
            raise AssertionError("the budget should have ended the attempt")

    wire(monkeypatch, clock, Script(), A)
    monkeypatch.setattr(upstream, "get_upstream", lambda backend: Hang())
    ctx = RequestContext.new(0.05)
    with pytest.raises(GatewayError) as info:
        await upstream.send(ctx, "POST", "/chat/completions", content=b"{}")
    assert (info.value.status, info.value.code) == (504, "upstream_timeout") and ctx.attempts == 1


async def test_a_token_the_gateway_cannot_get_is_its_own_fault_not_a_crash(
        monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    # No managed identity on the app, or no `az login` locally: azure-identity raises before any byte
    # is sent. The caller gets the gateway-side 502 that says what to check, at once (no retries).
    from azure.identity import CredentialUnavailableError

    script = Script(a=[CredentialUnavailableError("ManagedIdentityCredential authentication unavailable"),
                       Reply(200)])
    wire(monkeypatch, clock, script, A)
    with pytest.raises(GatewayError) as info:
        await upstream.send(context(clock), "POST", "/chat/completions", content=b"{}")
    assert (info.value.status, info.value.code) == (502, "upstream_auth_failed")
    assert "ManagedIdentityCredential" in info.value.message and "AZURE_CLIENT_ID" in info.value.message
    assert script.calls == ["a"] and clock.sleeps == []
