"""Calls to the upstream: the backend pool picks where, the one retry policy decides when.

Bodies are forwarded as bytes and responses returned raw (``httpx2.Response``): the gateway relays
what the upstream said instead of parsing it into SDK models and serialising it again, which would
cost time and drop fields the SDK does not know yet.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from shared import telemetry
from shared.backends import DEFAULT_COOLDOWN_5XX, DEFAULT_COOLDOWN_429, BackendPool
from shared.clients import get_openai_client
from shared.config import BackendConfig, get_settings
from shared.context import RequestContext
from shared.errors import GatewayError, upstream_timeout, upstream_unreachable
from shared.lazy import LazyModule
from shared.retry import Failure, RetryPolicy, parse_retry_after, status_is_retryable
from shared.transport_errors import is_real_timeout

if TYPE_CHECKING:
    import httpx2
    import openai
else:
    httpx2 = LazyModule("httpx2")
    openai = LazyModule("openai")

Method = Literal["GET", "POST", "DELETE"]
_JSON = {"content-type": "application/json"}
SETTLE_SECONDS = 0.25


@lru_cache(maxsize=1)
def get_retry_policy() -> RetryPolicy:
    settings = get_settings()
    return RetryPolicy(max_attempts=settings.retry_max_attempts, max_retry_after=settings.retry_max_wait_seconds)


@lru_cache(maxsize=1)
def get_backend_pool() -> BackendPool:
    return BackendPool.from_settings(get_settings())


class UpstreamError(Exception):
    """The upstream answered with an error status; relayed to the caller as it came."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(f"upstream answered {response.status_code}")
        self.response = response


class AllCoolingDown(Exception):
    """Every backend that could serve this request is cooling down after a 429 (or 5xx)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"all backends cooling down for {seconds:.3f} s")
        self.seconds = seconds


def classify(exc: BaseException) -> Failure | None:
    """What the retry policy should make of an upstream failure."""
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        return Failure(status_is_retryable(exc.status_code, headers), exc.status_code, headers)
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return Failure(True)
    if isinstance(exc, AllCoolingDown):
        return Failure(True, 429, {"retry-after-ms": str(math.ceil(exc.seconds * 1000))})
    return None


def rate_limited(seconds: float) -> GatewayError:
    ms = math.ceil(seconds * 1000)
    return GatewayError(
        429,
        f"Every upstream deployment for this model is rate limited; retry after {ms / 1000:.1f} s.",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(ms)},
    )


def _cool_down(pool: BackendPool, backend: BackendConfig, deployment: str | None, exc: Exception) -> None:
    """Skip a backend for as long as it asked (or a default) after it throttled or failed."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        asked = parse_retry_after(exc.response.headers)
        if status == 429:
            pool.cool(backend, deployment, asked if asked is not None else DEFAULT_COOLDOWN_429)
        elif pool.multiple and status_is_retryable(status, exc.response.headers):
            pool.cool(backend, deployment, asked if asked is not None else DEFAULT_COOLDOWN_5XX)
    elif pool.multiple:
        # With one backend a cool-down would only turn a quick retry into a wait.
        pool.cool(backend, deployment, DEFAULT_COOLDOWN_5XX)


async def send(
    ctx: RequestContext,
    method: Method,
    path: str,
    *,
    content: bytes | None = None,
    stream: bool = False,
    pinned: str | None = None,
    probe_not_found: bool = False,
) -> httpx2.Response:
    """Send one logical request (with failover and retries); return the successful response.

    ``pinned`` restricts the request to one backend (Responses affinity). ``probe_not_found``
    treats a 404 as "not here" and tries the next backend (a stored response created through
    another instance). For ``stream=True`` only the headers have been read when this returns; the
    caller owns the body and must close the response. Errors come out as :class:`UpstreamError`
    (the upstream's own error response) or :class:`GatewayError` (throttled, unreachable, late).
    """
    pool = get_backend_pool()
    deployment = ctx.model
    tried: set[str] = set()
    headers = {"x-ms-client-request-id": ctx.request_id}
    if content is not None:
        headers.update(_JSON)

    async def attempt() -> httpx2.Response:
        backend = pool.pick(deployment, tried, pinned)
        while backend is None:
            wait = pool.ready_in(deployment, pinned)
            if wait > SETTLE_SECONDS:
                raise AllCoolingDown(wait)
            # The policy just waited the upstream's retry-after; the cool-down, stamped when the
            # 429 arrived, may still have a few milliseconds to run (and the event loop may wake a
            # sleeper a clock tick early). Finish it rather than give up.
            await _sleep_counted(ctx)(wait + 0.002)
            backend = pool.pick(deployment, tried, pinned)
        tried.add(backend.name)
        ctx.attempts += 1
        ctx.backend = backend.name
        client = get_openai_client(backend)
        remaining = ctx.deadline.remaining()
        options: openai.RequestOptions = {
            "headers": headers,
            "timeout": httpx2.Timeout(remaining, connect=min(5.0, remaining)),
        }
        started = time.perf_counter()
        with telemetry.attempt_span(ctx, backend.name) as span:
            try:
                async with asyncio.timeout(remaining):
                    if method == "POST":
                        response = await client.post(path, cast_to=httpx2.Response, content=content,
                                                     options=options, stream=stream, stream_cls=None)
                    elif method == "GET":
                        response = await client.get(path, cast_to=httpx2.Response, options=options)
                    else:
                        response = await client.delete(path, cast_to=httpx2.Response, options=options)
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status_code)
                return response
            except TimeoutError:
                raise upstream_timeout(f"no answer within the request's budget of {remaining:.1f} s") from None
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                _cool_down(pool, backend, deployment, exc)
                if span is not None:
                    span.set_attribute("http.response.status_code", getattr(exc, "status_code", 0))
                raise
            finally:
                ctx.upstream_seconds += time.perf_counter() - started

    def judge(exc: BaseException) -> Failure | None:
        if (probe_not_found and isinstance(exc, openai.APIStatusError) and exc.status_code == 404
                and pool.untried_ready(deployment, tried, pinned)):
            return Failure(True, 404)
        return classify(exc)

    policy = get_retry_policy()
    try:
        response = await policy.run(attempt, classify=judge, deadline=ctx.deadline, sleep=_sleep_counted(ctx),
                                    failover=lambda: pool.untried_ready(deployment, tried, pinned))
    except openai.APIStatusError as exc:
        _note(ctx, exc.response)
        raise UpstreamError(exc.response) from None
    except AllCoolingDown as exc:
        raise rate_limited(exc.seconds) from None
    except openai.APITimeoutError as exc:
        if is_real_timeout(exc):
            raise upstream_timeout(f"gave up after {ctx.attempts} attempt(s)") from None
        raise upstream_unreachable(f"{_root(exc)} after {ctx.attempts} attempt(s)") from None
    except openai.APIConnectionError as exc:
        raise upstream_unreachable(f"{_root(exc)} after {ctx.attempts} attempt(s)") from None
    _note(ctx, response)
    return response


def _sleep_counted(ctx: RequestContext) -> Callable[[float], Awaitable[None]]:
    """Retry waits count as upstream time: they are the upstream's doing, not our overhead."""

    async def sleep(seconds: float) -> None:
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        ctx.upstream_seconds += time.perf_counter() - started

    return sleep


def _root(exc: BaseException) -> str:
    """The name of the innermost cause (e.g. ClientConnectorError), for a readable message."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


def _note(ctx: RequestContext, response: httpx2.Response) -> None:
    ctx.upstream_status = response.status_code
    ctx.upstream_request_id = response.headers.get("apim-request-id") or response.headers.get("x-request-id")
