"""Server-sent events relayed from the upstream as they arrive.

Written by hand because no library relays SSE byte-for-byte: the SDK's stream parser would decode
and re-encode every event (slower, and lossy for event types it does not know). We only keep event
framing intact so that an error we add at the end always starts on an event boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from shared.context import RequestContext
from shared.errors import GatewayError, sse_error_event, upstream_timeout, upstream_unreachable
from shared.lazy import LazyModule
from shared.transport_errors import is_real_timeout

if TYPE_CHECKING:
    import httpx2
else:
    httpx2 = LazyModule("httpx2")


def _event_boundary(data: bytes) -> int:
    """Index just past the last complete event in ``data`` (0 when there is none)."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


async def relay_events(response: httpx2.Response, ctx: RequestContext) -> AsyncIterator[bytes]:
    """Yield complete SSE events as soon as they arrive; end with an error event on failure.

    Never retried: once the first byte has gone to the caller, a second attempt would duplicate
    output. Closing this generator (the caller went away) closes the upstream response, which
    drops the upstream connection and stops the generation we would otherwise pay for.
    """
    pending = b""
    try:
        async for chunk in response.aiter_bytes():
            data = pending + chunk if pending else chunk
            cut = _event_boundary(data)
            if cut == len(data):
                pending = b""
                ctx.mark_first_byte()
                yield data
            elif cut:
                pending = data[cut:]
                ctx.mark_first_byte()
                yield data[:cut]
            else:
                pending = data
            if ctx.deadline.expired:
                raise upstream_timeout("the stream ran past the request's time budget")
        if pending:
            yield pending
    except GatewayError as exc:
        yield sse_error_event(exc)
    except httpx2.TimeoutException as exc:
        if is_real_timeout(exc):
            yield sse_error_event(upstream_timeout("the upstream stopped sending in the middle of the stream"))
        else:
            yield sse_error_event(upstream_unreachable("connection lost in the middle of the stream"))
    except Exception as exc:
        # Whatever the transport raised (httpx2 or aiohttp errors), the caller must learn that the
        # stream is incomplete rather than see it end as if it were whole.
        detail = f"connection lost in the middle of the stream ({type(exc).__name__})"
        yield sse_error_event(upstream_unreachable(detail))
    finally:
        await response.aclose()
