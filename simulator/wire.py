"""Putting bytes on the wire: pacing, client-disconnect detection and deliberate breakage.

Starlette's own responses cannot half-send a body, close a socket without answering, or tell us
that a streaming client went away, and those are exactly the behaviours gateway tests need. So
every API reply is a `Reply`, a Starlette `Response` whose ASGI call does the sending itself.

Aborting a connection needs the transport, which ASGI hides; `SimulatorApp` (see app.py) stores
uvicorn's transport in ``scope["sim.transport"]``. Without one (an in-process ASGI client) an abort
falls back to raising `ConnectionAbort`, which the server turns into a broken connection too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .stats import RequestRecord, Stats

TRANSPORT_SCOPE_KEY = "sim.transport"


class ConnectionAbort(Exception):
    """Raised to break a connection when no transport is reachable."""


async def wait_for_disconnect(receive: Receive, seconds: float | None) -> bool:
    """Wait up to `seconds` (None = forever) for the client to go away; True if it did.

    Only call once the request body has been read, so that the next ASGI message can only be
    `http.disconnect`.
    """
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return True
    except TimeoutError:
        return False


async def abort_connection(scope: Scope, receive: Receive, *, hard: bool) -> None:
    """Close the client's TCP connection now, without finishing the HTTP message.

    `hard` sends a TCP reset (SO_LINGER 0) and drops anything buffered; otherwise buffered bytes
    are flushed and the socket closed normally, so a client sees the data sent so far and then an
    incomplete body.
    """
    transport: Any = scope.get(TRANSPORT_SCOPE_KEY)
    if transport is None:
        raise ConnectionAbort("simulated connection abort")
    if hard:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    # Let the server notice the loss so it does not try to answer on our behalf.
    await wait_for_disconnect(receive, 2.0)


class Reply(Response):
    """One API reply: a JSON body or a list of SSE events, optionally delayed or sabotaged.

    * ``pre_delay_s``: wait before sending anything (TTFT for non-streaming replies, or a
      `slow_first_byte` fault); a client that leaves meanwhile is recorded as cancelled.
    * ``events``/``delays``: SSE events, each sent after its delay; events with no delay between
      them go out in one write to keep loopback overhead low.
    * ``drop_after``: send that many events (or half the JSON body) and then cut the connection.
    * ``action``: "reset" closes the connection without a response; "hang" sends nothing for
      ``hang_s`` seconds (or until the client leaves) and then closes the connection.
    """

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        *,
        events: list[bytes] | None = None,
        delays: list[float] | None = None,
        pre_delay_s: float = 0.0,
        drop_after: int | None = None,
        action: str | None = None,
        hang_s: float = 0.0,
        record: RequestRecord | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.status_code = status
        self.background = None
        self.body = body
        self.raw_headers = headers
        if events is None:
            headers.append((b"content-length", str(len(body)).encode()))
        self.events = events
        self.delays = delays
        self.pre_delay_s = pre_delay_s
        self.drop_after = drop_after
        self.action = action
        self.hang_s = hang_s
        self.record = record
        self.stats = stats

    def _finish(self, *, cancelled: bool = False, aborted: bool = False) -> None:
        if self.record is not None and self.stats is not None:
            self.stats.finish(self.record, cancelled=cancelled, aborted=aborted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.action is not None:
            await self._misbehave(scope, receive)
            return
        if self.pre_delay_s > 0 and await wait_for_disconnect(receive, self.pre_delay_s):
            self._finish(cancelled=True)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.record is not None and self.stats is not None:
            self.stats.sent_status(self.record, self.status_code)
        if self.events is None:
            await self._send_body(scope, receive, send)
        else:
            await self._send_events(scope, receive, send)

    async def _misbehave(self, scope: Scope, receive: Receive) -> None:
        if self.action == "hang" and await wait_for_disconnect(receive, self.hang_s):
            self._finish(cancelled=True)
            return
        self._finish(aborted=True)
        await abort_connection(scope, receive, hard=self.action == "reset")

    async def _send_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.body)
        if self.drop_after is None:
            await send({"type": "http.response.body", "body": body, "more_body": False})
            self._finish()
            return
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        self._finish(aborted=True)
        await abort_connection(scope, receive, hard=False)

    async def _send_events(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = self.events or []
        if self.drop_after is None and not any(self.delays or ()):
            # Nothing to pace and nothing to interrupt: one write, no watcher task.
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": False})
            if self.record is not None:
                self.record.chunks_sent += len(events)
            self._finish()
            return
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive, None))
        await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
        if pump.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if pump.result():  # the stream was cut on purpose
                self._finish(aborted=True)
                await abort_connection(scope, receive, hard=False)
            else:
                self._finish()
            return
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        self._finish(cancelled=True)

    async def _pump(self, send: Send) -> bool:
        """Send the events with their pacing; return True if the stream must now be cut."""
        events = self.events or []
        delays = self.delays or [0.0] * len(events)
        record = self.record
        drop_after = self.drop_after
        pending: list[bytes] = []

        async def flush(more: bool) -> None:
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": more})
            if record is not None:
                record.chunks_sent += len(pending)
            pending.clear()

        if drop_after is not None and drop_after <= 0:
            return True
        for index, event in enumerate(events):
            delay = delays[index]
            if delay > 0:
                if pending:
                    await flush(True)
                await asyncio.sleep(delay)
            pending.append(event)
            if drop_after is not None and index + 1 >= drop_after:
                await flush(True)
                return True
        if drop_after is not None:  # fewer events than asked for: still never finish the body
            await flush(True)
            return True
        await flush(False)
        return False
