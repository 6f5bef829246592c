"""Server-sent events relayed from the upstream as they arrive.

Written by hand because no library relays SSE byte-for-byte: the SDK's stream parser would decode
and re-encode every event (slower, and lossy for event types it does not know). We only keep event
framing intact so that an error we add at the end always starts on an event boundary.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from shared.context import RequestContext
from shared.errors import GatewayError, sse_error_event, stream_incomplete, upstream_timeout, upstream_unreachable
from shared.transport_errors import is_timeout

if TYPE_CHECKING:
    from shared.upstream_http import UpstreamResponse


# How a whole stream ends: Chat Completions with `data: [DONE]`, the Responses API with one of these
# events; an `error` event (or a chat chunk carrying `error`) ends either. Anything else last means
# the upstream stopped short, even if it closed the connection cleanly.
_TERMINAL_TYPES = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})


def _is_terminal(event: bytes) -> bool:
    """Whether ``event`` (one SSE event, without its blank line) may end a stream."""
    kind = b""
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"event:"):
            kind = line[6:].strip()
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
    if kind.decode("utf-8", "replace") in _TERMINAL_TYPES:
        return True
    text = b"\n".join(data).strip()
    if text == b"[DONE]":
        return True
    try:
        payload = json.loads(text)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    kind_in_data = payload.get("type")
    return kind_in_data in _TERMINAL_TYPES or (kind_in_data is None and "error" in payload)


def _last_event(data: bytes) -> bytes:
    """The last event of ``data`` (complete events, the last one followed by its blank line)."""
    body = data.rstrip(b"\r\n")
    cut = max(body.rfind(b"\n\n"), body.rfind(b"\r\n\r\n"))
    return body[cut:].strip(b"\r\n") if cut >= 0 else body


def _event_boundary(data: bytes) -> int:
    """Index just past the last complete event in ``data`` (0 when there is none)."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


async def relay_events(response: UpstreamResponse, ctx: RequestContext) -> AsyncIterator[bytes]:
    """Yield complete SSE events as soon as they arrive; end with an error event on failure.

    Never retried: once the first byte has gone to the caller, a second attempt would duplicate
    output. Closing this generator (the caller went away) closes the upstream response, which
    drops the upstream connection and stops the generation we would otherwise pay for.
    """
    pending = b""
    last = b""  # the latest complete events relayed: the stream is whole only if they end it
    try:
        async for chunk in response.aiter_bytes():
            data = pending + chunk if pending else chunk
            cut = _event_boundary(data)
            if cut == len(data):
                pending = b""
                ctx.mark_first_byte()
                last = data
                yield data
            elif cut:
                pending = data[cut:]
                ctx.mark_first_byte()
                last = data[:cut]
                yield last
            else:
                pending = data
            if ctx.deadline.expired:
                raise upstream_timeout("the stream ran past the request's time budget")
        if pending.strip():
            # Closed inside an event: relay it whole only if it is the terminator missing its blank
            # line; a cut-off event would reach the caller as unparseable data.
            if not _is_terminal(pending.strip(b"\r\n")):
                raise stream_incomplete()
            yield pending.rstrip(b"\r\n") + b"\n\n"
        elif not _is_terminal(_last_event(last)):
            raise stream_incomplete()
    except GatewayError as exc:
        yield sse_error_event(exc)
    except Exception as exc:
        # Whatever the transport raised, the caller must learn that the stream is incomplete rather
        # than see it end as if it were whole; a stalled read is a timeout, anything else a lost line.
        if is_timeout(exc):
            yield sse_error_event(upstream_timeout("the upstream stopped sending in the middle of the stream"))
        else:
            detail = f"connection lost in the middle of the stream ({type(exc).__name__})"
            yield sse_error_event(upstream_unreachable(detail))
    finally:
        await response.aclose()
