"""SSE relay: events pass through as they arrive, framing stays intact, failures end in an error event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2

from shared.context import RequestContext
from shared.relay import relay_events


class Chunks(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes], fail_with: Exception | None = None) -> None:
        self.chunks, self.fail_with, self.closed = chunks, fail_with, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.fail_with is not None:
            raise self.fail_with

    async def aclose(self) -> None:
        self.closed = True


async def collect(stream: Chunks, timeout: float = 60.0) -> list[bytes]:
    response = httpx2.Response(200, stream=stream)
    return [chunk async for chunk in relay_events(response, RequestContext.new(timeout))]


async def test_complete_events_pass_through_unchanged() -> None:
    stream = Chunks([b"data: 1\n\n", b"data: 2\n\ndata: 3\n\n", b"data: [DONE]\n\n"])
    assert await collect(stream) == [b"data: 1\n\n", b"data: 2\n\ndata: 3\n\n", b"data: [DONE]\n\n"]
    assert stream.closed


async def test_split_events_are_joined_before_sending() -> None:
    out = await collect(Chunks([b"event: a\nda", b"ta: 1\n\nevent: b\n", b"data: 2\n\n", b"data: [DONE]\n\n"]))
    assert out == [b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n", b"data: [DONE]\n\n"]


async def test_crlf_framing_is_understood() -> None:
    out = await collect(Chunks([b"data: 1\r\n\r\ndata: [DONE]", b"\r\n\r\n"]))
    assert out == [b"data: 1\r\n\r\n", b"data: [DONE]\r\n\r\n"]


async def test_connection_loss_ends_with_an_error_event_on_a_boundary() -> None:
    stream = Chunks([b"data: 1\n\n", b"data: {\"partial"], fail_with=httpx2.RemoteProtocolError("peer closed"))
    out = await collect(stream)
    assert out[0] == b"data: 1\n\n"
    assert out[1].startswith(b"event: error\ndata: ") and out[1].endswith(b"\n\n")
    payload = json.loads(out[1].split(b"data: ", 1)[1])
    assert payload["error"]["code"] == "upstream_unreachable"
    assert b"partial" not in b"".join(out)
    assert stream.closed


async def test_read_timeout_is_reported_as_upstream_timeout() -> None:
    out = await collect(Chunks([b"data: 1\n\n"], fail_with=httpx2.ReadTimeout("slow")))
    assert json.loads(out[-1].split(b"data: ", 1)[1])["error"]["code"] == "upstream_timeout"


async def test_deadline_stops_a_stream_that_runs_too_long() -> None:
    out = await collect(Chunks([b"data: 1\n\n", b"data: 2\n\n"]), timeout=0.0)
    assert out[0] == b"data: 1\n\n"
    assert json.loads(out[1].split(b"data: ", 1)[1])["error"]["code"] == "upstream_timeout"
    assert len(out) == 2


# --- a clean close is not enough: the stream must have ended with its terminator --------------------

def _code(event: bytes) -> str:
    assert event.startswith(b"event: error\ndata: ") and event.endswith(b"\n\n")
    return str(json.loads(event.split(b"data: ", 1)[1])["error"]["code"])


async def test_clean_close_before_done_ends_with_an_error_event() -> None:
    out = await collect(Chunks([b"data: {\"choices\": []}\n\n"]))
    assert out[0] == b"data: {\"choices\": []}\n\n"
    assert _code(out[1]) == "upstream_stream_incomplete"


async def test_clean_close_inside_an_event_drops_it_and_ends_with_an_error_event() -> None:
    out = await collect(Chunks([b"data: 1\n\n", b"data: {\"partial"]))
    assert out[0] == b"data: 1\n\n" and b"partial" not in b"".join(out)
    assert _code(out[1]) == "upstream_stream_incomplete"


async def test_terminator_without_its_blank_line_is_relayed_whole() -> None:
    assert await collect(Chunks([b"data: 1\n\n", b"data: [DONE]\n"])) == [b"data: 1\n\n", b"data: [DONE]\n\n"]


async def test_responses_terminal_events_end_a_stream() -> None:
    for kind in ("response.completed", "response.failed", "response.incomplete", "error"):
        event = b"event: %s\ndata: {\"type\": \"%s\"}\n\n" % (kind.encode(), kind.encode())
        assert await collect(Chunks([b"event: response.created\ndata: {}\n\n", event])) == [
            b"event: response.created\ndata: {}\n\n", event]


async def test_responses_stream_cut_after_a_delta_is_incomplete() -> None:
    delta = b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta"}\n\n'
    out = await collect(Chunks([delta]))
    assert out[0] == delta and _code(out[1]) == "upstream_stream_incomplete"


async def test_a_chat_error_chunk_ends_a_stream() -> None:
    error = b'data: {"error": {"message": "content filtered", "code": "content_filter"}}\n\n'
    assert await collect(Chunks([b"data: 1\n\n", error])) == [b"data: 1\n\n", error]
