"""Calls to the upstream through the one ``AsyncOpenAI`` client and the one retry policy.

Bodies are forwarded as bytes and responses returned raw (``httpx2.Response``): the gateway relays
what the upstream said instead of parsing it into SDK models and serialising it again, which would
cost time and drop fields the SDK does not know yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Literal

import httpx2
import openai

from shared.clients import get_openai_client
from shared.config import get_settings
from shared.context import RequestContext
from shared.errors import GatewayError, upstream_timeout, upstream_unreachable
from shared.retry import Failure, RetryPolicy, status_is_retryable

Method = Literal["GET", "POST", "DELETE"]
_JSON = {"content-type": "application/json"}


@lru_cache(maxsize=1)
def get_retry_policy() -> RetryPolicy:
    return RetryPolicy(max_attempts=get_settings().retry_max_attempts)


def classify(exc: BaseException) -> Failure | None:
    """What the retry policy should make of an upstream failure."""
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        return Failure(status_is_retryable(exc.status_code, headers), exc.status_code, headers)
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return Failure(True)
    return None


class UpstreamError(Exception):
    """The upstream answered with an error status; relayed to the caller as it came."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(f"upstream answered {response.status_code}")
        self.response = response


async def send(
    ctx: RequestContext,
    method: Method,
    path: str,
    *,
    content: bytes | None = None,
    stream: bool = False,
) -> httpx2.Response:
    """Send one logical request (with retries) and return the upstream's successful response.

    For ``stream=True`` only the headers have been read when this returns; the caller owns the
    body and must close the response. Errors come out as :class:`UpstreamError` (the upstream's own
    error response) or :class:`GatewayError` (unreachable, out of time).
    """
    client = get_openai_client()
    headers = {"x-ms-client-request-id": ctx.request_id}
    if content is not None:
        headers.update(_JSON)

    async def attempt() -> httpx2.Response:
        ctx.attempts += 1
        remaining = ctx.deadline.remaining()
        options: openai.RequestOptions = {
            "headers": headers,
            "timeout": httpx2.Timeout(remaining, connect=min(5.0, remaining)),
        }
        started = time.perf_counter()
        try:
            async with asyncio.timeout(remaining):
                if method == "POST":
                    return await client.post(path, cast_to=httpx2.Response, content=content, options=options,
                                             stream=stream, stream_cls=None)
                if method == "GET":
                    return await client.get(path, cast_to=httpx2.Response, options=options)
                return await client.delete(path, cast_to=httpx2.Response, options=options)
        except TimeoutError:
            raise upstream_timeout(f"no answer within the request's budget of {remaining:.1f} s") from None
        finally:
            ctx.upstream_seconds += time.perf_counter() - started

    policy = get_retry_policy()
    try:
        response = await policy.run(attempt, classify=classify, deadline=ctx.deadline,
                                    sleep=_sleep_counted(ctx))
    except openai.APIStatusError as exc:
        _note(ctx, exc.response)
        raise UpstreamError(exc.response) from None
    except openai.APITimeoutError:
        raise upstream_timeout(f"gave up after {ctx.attempts} attempt(s)") from None
    except openai.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise upstream_unreachable(f"{type(cause).__name__} after {ctx.attempts} attempt(s)") from None
    except GatewayError:
        raise
    _note(ctx, response)
    return response


def _sleep_counted(ctx: RequestContext) -> Callable[[float], Awaitable[None]]:
    """Retry waits count as upstream time: they are the upstream's doing, not our overhead."""

    async def sleep(seconds: float) -> None:
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        ctx.upstream_seconds += time.perf_counter() - started

    return sleep


def _note(ctx: RequestContext, response: httpx2.Response) -> None:
    ctx.upstream_status = response.status_code
    ctx.upstream_request_id = response.headers.get("apim-request-id") or response.headers.get("x-request-id")
