"""The upstream's HTTP client on the hot path: aiohttp, one session per backend, bytes in, bytes out.

Why not the ``openai`` SDK here: the gateway forwards the caller's bytes and relays the upstream's,
so the SDK's request building (options models, header merging) and its httpx2 request/response models
over aiohttp only add work. Measured sequentially against the simulator on the same machine, one
call cost 0.43 ms of CPU through ``AsyncOpenAI.post`` over ``DefaultAioHttpClient`` and 0.10 ms with
aiohttp directly. What the SDK gave the hot path is kept: the key as ``api-key`` and bearer, or an
Entra ID token from :func:`shared.identity.openai_token_provider` (cached and refreshed by
azure-identity), connection reuse, and timeouts. Retries stay in :mod:`shared.upstream`.

Failures come out as aiohttp raises them: ``TimeoutError`` subclasses for timeouts,
``aiohttp.ClientError``/``OSError`` for lost or refused connections (see :mod:`shared.transport_errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from shared.lazy import LazyModule

if TYPE_CHECKING:
    import aiohttp
else:
    aiohttp = LazyModule("aiohttp")

TokenProvider = Callable[[], Awaitable[str]]

# Idle upstream connections are kept this long for reuse (a pool, not a leak: tests/soak waits it out).
UPSTREAM_KEEPALIVE_SECONDS = 30.0
MAX_CONNECTIONS = 1000
# Longest wait for a TCP (and TLS) connection before the attempt counts as failed and is retried.
CONNECT_SECONDS = 5.0


class UpstreamResponse(Protocol):
    """What the gateway reads from an upstream response (``httpx2.Response`` has the same shape)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


# Upstream headers worth passing on: rate-limit state lets callers pace themselves, and the
# upstream's own ids let support trace a request through Azure.
RELAYED_HEADERS = (
    "content-type",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "apim-request-id",
    "openai-processing-ms",
)


def relayed_headers(response: UpstreamResponse) -> dict[str, str]:
    """The :data:`RELAYED_HEADERS` the upstream sent, for the caller's reply."""
    headers = response.headers
    return {name: value for name in RELAYED_HEADERS if (value := headers.get(name)) is not None}


class AiohttpResponse:
    """An aiohttp response as an :class:`UpstreamResponse`: the body read at once, or streamed."""

    __slots__ = ("_body", "_response")

    def __init__(self, response: aiohttp.ClientResponse, body: bytes | None = None) -> None:
        self._response = response
        self._body = body

    @property
    def status_code(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def content(self) -> bytes:
        if self._body is None:
            raise RuntimeError("the body of a streamed upstream response is read with aiter_bytes()")
        return self._body

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, one network read at a time (never re-chunked, never buffered)."""
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        """Give the connection back if the body was read to its end; otherwise drop it, which is
        how the upstream learns the caller left and stops generating."""
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


class UpstreamHttp:
    """One backend's base URL, credentials and connection pool.

    The aiohttp session is made on first use, inside the event loop that serves requests (the
    Functions worker runs one loop per process), and reused by every request after it.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, token: TokenProvider | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers: dict[str, str] = {}
        if api_key is not None:
            # Azure's native header, and the bearer form other OpenAI-compatible servers read.
            self._headers = {"api-key": api_key, "authorization": f"Bearer {api_key}"}
        self._token = None if api_key is not None else token
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS)
        return aiohttp.ClientSession(connector=connector, headers=self._headers)

    async def request(self, method: str, path: str, *, headers: Mapping[str, str], content: bytes | None,
                      stream: bool, read_seconds: float) -> AiohttpResponse:
        """Send one attempt; return once the headers (and, unless ``stream``, the body) have arrived.

        ``read_seconds`` bounds every wait for bytes, so a stream that stalls fails rather than hangs;
        the caller bounds the whole attempt by the request's deadline.
        """
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open()
        if self._token is not None:
            headers = {**headers, "authorization": f"Bearer {await self._token()}"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_SECONDS, read_seconds),
                                        sock_read=read_seconds)
        response = await session.request(method, self.base_url + path, data=content, headers=headers,
                                         timeout=timeout)
        if stream and response.status < 400:  # an error's body is read now: it is the caller's answer
            return AiohttpResponse(response)
        try:
            body = await response.read()
        finally:
            response.release()
        return AiohttpResponse(response, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
