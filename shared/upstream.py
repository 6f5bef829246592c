"""The upstream call: one logical request, its attempts, failover and retries, in one plain loop.

Follow a request through :func:`send`: for each attempt the pool picks a backend
(:mod:`shared.backends`), that backend's client sends the bytes (:mod:`shared.upstream_http`), a
failure is described as a :class:`~shared.retry.Failure`, the pool learns from it (cool-downs), and
the retry policy (:mod:`shared.retry`) decides whether to go again and how long to wait first.

Bodies are forwarded as bytes and responses returned raw: the gateway relays what the upstream said
instead of parsing it into models and serialising it again, which would cost time and drop fields.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from azure.core.exceptions import ClientAuthenticationError

from shared import telemetry
from shared.backends import BackendPool, get_backend_pool
from shared.clients import get_upstream
from shared.config import BackendConfig
from shared.context import RequestContext
from shared.errors import (
    GatewayError,
    UpstreamError,
    gateway_credential_unavailable,
    rate_limited,
    upstream_timeout,
    upstream_unreachable,
)
from shared.lazy import LazyModule
from shared.retry import Failure, get_retry_policy
from shared.transport_errors import is_timeout

if TYPE_CHECKING:
    import aiohttp

    from shared.upstream_http import UpstreamResponse
else:
    aiohttp = LazyModule("aiohttp")

__all__ = ["SETTLE_SECONDS", "Method", "send"]

Method = Literal["GET", "POST", "DELETE"]
# A cool-down this close to its end is waited out rather than answered with 429: the policy has just
# waited the upstream's retry-after, and the cool-down was stamped a moment later, when the 429 arrived.
SETTLE_SECONDS = 0.25


async def send(
    ctx: RequestContext,
    method: Method,
    path: str,
    *,
    content: bytes | None = None,
    stream: bool = False,
    pinned: str | None = None,
    probe_not_found: bool = False,
) -> UpstreamResponse:
    """Send one logical request (with failover and retries); return the successful response.

    ``pinned`` restricts the request to one backend (Responses affinity). ``probe_not_found``
    treats a 404 as "not here" and tries the next backend (a stored response created through
    another instance). For ``stream=True`` only the headers have been read when this returns: the
    caller owns the body and must close the response, and a failure while reading it is never
    retried. Errors come out as :class:`UpstreamError` (the upstream's own error response) or
    :class:`GatewayError` (throttled, unreachable, out of time).
    """
    pool = get_backend_pool()
    policy = get_retry_policy()
    deployment = ctx.model
    headers = {"x-ms-client-request-id": ctx.request_id}
    if content is not None:
        headers["content-type"] = "application/json"
    tried: set[str] = set()
    for attempt in range(1, max(1, policy.max_attempts) + 1):  # the first attempt always goes
        backend = await _next_backend(ctx, pool, tried, pinned)
        if backend is None:
            # Every candidate is cooling down for longer than a moment: wait like a 429 asked, or give up.
            cooling = pool.ready_in(deployment, pinned)
            failure = Failure(True, 429, {"retry-after-ms": str(math.ceil(cooling * 1000))})
            error: GatewayError | UpstreamError = rate_limited(cooling)
        else:
            tried.add(backend.name)
            outcome = await _attempt(ctx, backend, method, path, headers, content, stream)
            if not isinstance(outcome, _Failed):
                _note(ctx, outcome)
                return outcome
            failure, error = outcome.failure, outcome.error
            pool.record_failure(backend, deployment, failure)
        failover = pool.untried_ready(deployment, tried, pinned)
        if probe_not_found and failure.status == 404 and failover:
            failure = Failure(True, 404)  # "not here": look on the next backend
        wait = policy.delay(attempt, failure, remaining=ctx.deadline.remaining(), failover=failover)
        if wait is None:
            break
        if wait > 0:
            await _wait(ctx, wait)
    if isinstance(error, UpstreamError):
        _note(ctx, error.response)
    raise error


async def _next_backend(ctx: RequestContext, pool: BackendPool, tried: set[str],
                        pinned: str | None) -> BackendConfig | None:
    """The backend for the next attempt; a cool-down about to end is waited out (None: none soon)."""
    for _ in range(3):
        backend = pool.pick(ctx.model, tried, pinned)
        if backend is not None:
            return backend
        wait = pool.ready_in(ctx.model, pinned)
        if wait > SETTLE_SECONDS:
            return None
        # The event loop may also wake a sleeper a clock tick early: wait a little past the end.
        await _wait(ctx, wait + 0.002)
    return pool.pick(ctx.model, tried, pinned)


@dataclass(frozen=True, slots=True)
class _Failed:
    """A failed attempt: what the policy and the pool judge it by, and what the caller is told if
    it is the last."""

    failure: Failure
    error: GatewayError | UpstreamError


async def _attempt(ctx: RequestContext, backend: BackendConfig, method: Method, path: str, headers: dict[str, str],
                   content: bytes | None, stream: bool) -> UpstreamResponse | _Failed:
    """One attempt on one backend: the response if it succeeded, else what failed and what to tell
    the caller if it is the last. Running out of the request's time is final and raised at once."""
    ctx.attempts += 1
    ctx.backend = backend.name
    remaining = ctx.deadline.remaining()
    started = time.perf_counter()
    with telemetry.attempt_span(ctx, backend.name) as span:
        try:
            async with asyncio.timeout(remaining) as budget:
                response = await get_upstream(backend).request(method, path, headers=headers, content=content,
                                                               stream=stream, read_seconds=remaining)
        except ClientAuthenticationError as exc:
            # azure-identity could not sign the call (no managed identity, no developer login): nothing
            # was sent, and trying again within this request would not help.
            raise gateway_credential_unavailable(str(exc).splitlines()[0][:300]) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if span is not None:
                span.set_attribute("http.response.status_code", 0)
            if isinstance(exc, TimeoutError) and budget.expired():
                raise upstream_timeout(f"no answer within the request's budget of {remaining:.1f} s") from None
            if is_timeout(exc):
                return _Failed(Failure(True), upstream_timeout(f"gave up after {ctx.attempts} attempt(s)"))
            return _Failed(Failure(True), upstream_unreachable(f"{_root(exc)} after {ctx.attempts} attempt(s)"))
        finally:
            ctx.upstream_seconds += time.perf_counter() - started
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        return _Failed(Failure.of_status(response.status_code, response.headers), UpstreamError(response))
    return response


async def _wait(ctx: RequestContext, seconds: float) -> None:
    """Retry waits count as upstream time: they are the upstream's doing, not our overhead."""
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    ctx.upstream_seconds += time.perf_counter() - started


def _root(exc: BaseException) -> str:
    """The name of the innermost cause (e.g. ConnectionRefusedError), for a readable message."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


def _note(ctx: RequestContext, response: UpstreamResponse) -> None:
    ctx.upstream_status = response.status_code
    ctx.upstream_request_id = response.headers.get("apim-request-id") or response.headers.get("x-request-id")
