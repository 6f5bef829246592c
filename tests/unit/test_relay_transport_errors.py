"""How the relay names a transport failure in the middle of a stream, for the errors the upstream
transport (aiohttp) really raises: a stalled read is a timeout (504's code), a cut connection is
"unreachable" (502's code); either way the stream ends with an error event, never silently."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from shared.context import RequestContext
from shared.relay import relay_events


class FailingBody:
    """An upstream response whose body yields ``chunks`` and then raises ``error``."""

    status_code = 200
    headers: dict[str, str] = {}
    content = b""

    def __init__(self, chunks: list[bytes], error: BaseException) -> None:
        self.chunks, self.error, self.closed = chunks, error, False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise self.error

    async def aclose(self) -> None:
        self.closed = True


async def _error_code(error: BaseException) -> str:
    response = FailingBody([b"data: 1\n\n"], error)
    out = [chunk async for chunk in relay_events(response, RequestContext.new(60.0))]
    assert out[0] == b"data: 1\n\n" and response.closed
    assert out[-1].startswith(b"event: error\ndata: ")
    return str(json.loads(out[-1].split(b"data: ", 1)[1])["error"]["code"])


@pytest.mark.parametrize("error", [aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
                                   aiohttp.SocketTimeoutError("read"), TimeoutError()])
async def test_a_stalled_read_is_a_timeout(error: BaseException) -> None:
    assert await _error_code(error) == "upstream_timeout"


@pytest.mark.parametrize("error", [aiohttp.ClientPayloadError("Response payload is not completed"),
                                   aiohttp.ServerDisconnectedError(), ConnectionResetError()])
async def test_a_cut_connection_is_unreachable(error: BaseException) -> None:
    assert await _error_code(error) == "upstream_unreachable"
