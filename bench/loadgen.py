"""Closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next request as
soon as the previous response has ended.

Why hand-written: the generator shares two cores with the servers it measures, so every
microsecond it spends per request is taken from them. A minimal ``asyncio.Protocol`` client on
uvloop that sends pre-encoded request bytes and parses only the status line, three headers and
the (chunked) body costs several times less CPU per request than aiohttp (``--client aiohttp`` runs
the same load through aiohttp so the claim can be re-checked; see bench/README.md). It also sees
each socket read as it happens, which is what timing SSE events needs: a client library that
buffers or re-frames the stream would hide exactly the buffering we want to catch.

Run as its own process (``python -m bench.loadgen ...``); it prints one JSON object on stdout.
It reads the CPU time of the server processes named with ``--watch NAME=PID`` at the start and
end of the measured phase, so CPU per request covers exactly the requests it timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.procstat import cpu_seconds
from bench.stats import summarize

HEAD_END = b"\r\n\r\n"
# Headers in which a proxy reports its own processing time (ours, and LiteLLM's equivalent).
SELF_REPORTED = (b"x-gateway-overhead-ms", b"x-litellm-overhead-duration-ms")
# States of the chunked-body parser: size line, chunk data, the CRLF after it, trailer section.
_SIZE, _DATA, _CRLF, _TRAILER = range(4)


@dataclass(slots=True)
class Target:
    """Where to send, and the exact bytes of one request (reused for every request)."""

    host: str
    port: int
    request: bytes

    @classmethod
    def build(cls, url: str, body: bytes, headers: Sequence[str] = ()) -> Target:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"URL needs an explicit host and port: {url}")
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the load generator only targets loopback addresses")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *headers,
        ]
        return cls(parts.hostname, parts.port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


@dataclass(slots=True)
class Samples:
    """Per-request timings of the measured phase, in seconds (arrays keep 100k samples cheap)."""

    latency: array[float] = field(default_factory=lambda: array("d"))
    first_event: array[float] = field(default_factory=lambda: array("d"))
    gaps: array[float] = field(default_factory=lambda: array("d"))
    overhead_ms: array[float] = field(default_factory=lambda: array("d"))
    events: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Response:
    """Incremental parser state for one response."""

    __slots__ = (
        "body_left", "chunk_left", "chunked", "done", "event_time", "events", "first_event", "gaps",
        "head", "headers_at", "last_byte", "overhead", "state", "status",
    )  # fmt: skip

    def __init__(self) -> None:
        self.head = bytearray()
        self.status = 0
        self.headers_at = 0.0
        self.chunked = False
        self.body_left = -1
        self.chunk_left = 0
        self.state = _SIZE
        self.done = False
        self.overhead: float | None = None
        self.first_event = 0.0
        self.event_time = 0.0
        self.events = 0
        self.gaps: list[float] = []
        self.last_byte = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request()`` sends and resolves when the response has ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.response: _Response | None = None
        self.waiter: asyncio.Future[_Response] | None = None
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed mid-response"))

    def request(self, data: bytes) -> asyncio.Future[_Response]:
        assert self.transport is not None
        self.response = _Response()
        self.buffer.clear()
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def _events(self, payload: bytes | bytearray, now: float) -> None:
        """Count SSE event ends (blank lines) in newly received payload; a split "\\n|\\n" counts too."""
        r = self.response
        assert r is not None
        found = payload.count(b"\n\n")
        if r.last_byte == 10 and payload[:1] == b"\n":
            found += 1
        if payload:
            r.last_byte = payload[-1]
        if not found:
            return
        if r.events == 0:
            r.first_event = now
        else:
            r.gaps.append(now - r.event_time)
        r.gaps.extend([0.0] * (found - 1))  # events that arrived in the same read: no gap at all
        r.events += found
        r.event_time = now

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        r = self.response
        if r is None or r.done:
            return
        if r.status == 0:
            r.head += data
            end = r.head.find(HEAD_END)
            if end < 0:
                return
            self._parse_head(bytes(r.head[:end]), now)
            data = bytes(r.head[end + 4 :])
        if r.chunked:
            self._chunked(data, now)
        else:
            take = data[: r.body_left]
            r.body_left -= len(take)
            self._events(take, now)
            if r.body_left <= 0:
                self._finish()

    def _parse_head(self, head: bytes, now: float) -> None:
        r = self.response
        assert r is not None
        lines = head.split(b"\r\n")
        r.status = int(lines[0].split(b" ", 2)[1])
        r.headers_at = now
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                r.body_left = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                r.chunked = True
            elif key in SELF_REPORTED:
                r.overhead = float(value)
        if not r.chunked and r.body_left < 0:
            r.body_left = 0

    def _chunked(self, data: bytes, now: float) -> None:
        """Advance the chunked-body state machine over everything buffered so far."""
        r = self.response
        assert r is not None
        buf = self.buffer
        buf += data
        pos, size_of_buf = 0, len(buf)
        payload = bytearray()
        finished = False
        while True:
            state = r.state
            if state == _SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
                pos = eol + 2
                r.chunk_left = size
                r.state = _DATA if size else _TRAILER
            elif state == _DATA:
                if pos >= size_of_buf:
                    break
                take = min(size_of_buf - pos, r.chunk_left)
                payload += buf[pos : pos + take]
                pos += take
                r.chunk_left -= take
                if r.chunk_left == 0:
                    r.state = _CRLF
            elif state == _CRLF:
                if size_of_buf - pos < 2:
                    break
                pos += 2
                r.state = _SIZE
            else:  # trailer section: header lines until a blank line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                blank = eol == pos
                pos = eol + 2
                if blank:
                    finished = True
                    break
        del buf[:pos]
        self._events(payload, now)
        if finished:
            self._finish()

    def _finish(self) -> None:
        r = self.response
        assert r is not None
        r.done = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(r)


async def _connect(loop: asyncio.AbstractEventLoop, target: Target) -> Connection:
    _, protocol = await loop.create_connection(lambda: Connection(loop), target.host, target.port)
    return protocol


async def run_raw(target: Target, concurrency: int, *, warmup: float, duration: float, max_requests: int,
                  watch: dict[str, int], pair: Target | None = None, stagger: float = 0.0) -> dict[str, Any]:
    """The load itself (raw protocol client); returns the JSON-able result.

    With ``pair``, as many connections again go to the second target at the same time, measured
    in the same window: on a shared machine, noise then hits both alike, which is what makes
    "through the proxy minus direct" trustworthy. The pair's figures are under ``"pair"``.
    """
    loop = asyncio.get_running_loop()
    samples = Samples()
    state = {"measuring": False, "stop": False}

    async def worker(target: Target = target, samples: Samples = samples) -> None:
        conn = await _connect(loop, target)
        # Closed-loop users that all start at once stay in lockstep when the upstream takes a fixed
        # time, and then hit the proxy in bursts of N. Random start offsets spread them out.
        await asyncio.sleep(random.uniform(0.0, stagger))
        while not state["stop"]:
            if conn.closed:
                conn = await _connect(loop, target)
            started = time.perf_counter()
            try:
                response = await conn.request(target.request)
            except ConnectionError:
                if state["measuring"]:
                    samples.errors += 1
                continue
            # Counted when it ends inside the measured window (steady state: it may have begun in
            # the warm-up), so requests/s and CPU per request cover the same interval.
            if not state["measuring"]:
                continue
            end = time.perf_counter()
            samples.statuses[response.status] = samples.statuses.get(response.status, 0) + 1
            if response.status != 200:
                samples.errors += 1
                continue
            samples.latency.append(end - started)
            if response.events:
                samples.first_event.append(response.first_event - started)
                samples.gaps.extend(response.gaps)
                samples.events += response.events
            if response.overhead is not None:
                samples.overhead_ms.append(response.overhead)
        if conn.transport is not None:
            conn.transport.close()

    extra: list[tuple[Any, Samples]] = []
    if pair is not None:
        pair_samples = Samples()
        extra.append((lambda: worker(pair, pair_samples), pair_samples))
    return await _drive(worker, concurrency, state, samples, warmup=warmup, duration=duration,
                        max_requests=max_requests, watch=watch, extra=extra)


async def run_aiohttp(target: Target, concurrency: int, *, warmup: float, duration: float, max_requests: int,
                      watch: dict[str, int]) -> dict[str, Any]:
    """The same load through aiohttp, to compare the generator's own CPU cost per request."""
    import aiohttp

    head, _, body = target.request.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode().split("\r\n")
    path = request_line.split(" ")[1]
    headers = dict(line.split(": ", 1) for line in header_lines if not line.lower().startswith(("host", "content-l")))
    url = f"http://{target.host}:{target.port}{path}"
    samples = Samples()
    state = {"measuring": False, "stop": False}
    connector = aiohttp.TCPConnector(limit=concurrency)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))

    async def worker() -> None:
        while not state["stop"]:
            started = time.perf_counter()
            first = last = 0.0
            events = 0
            gaps: list[float] = []
            async with session.post(url, data=body, headers=headers) as response:
                async for chunk in response.content.iter_any():
                    now = time.perf_counter()
                    found = chunk.count(b"\n\n")
                    if found:
                        if events == 0:
                            first = now
                        else:
                            gaps.append(now - last)
                        gaps.extend([0.0] * (found - 1))
                        events += found
                        last = now
                status = response.status
                overhead = response.headers.get("x-gateway-overhead-ms") or response.headers.get(
                    "x-litellm-overhead-duration-ms")
            if not state["measuring"]:
                continue
            end = time.perf_counter()
            samples.statuses[status] = samples.statuses.get(status, 0) + 1
            if status != 200:
                samples.errors += 1
                continue
            samples.latency.append(end - started)
            if events:
                samples.first_event.append(first - started)
                samples.gaps.extend(gaps)
                samples.events += events
            if overhead is not None:
                samples.overhead_ms.append(float(overhead))

    try:
        return await _drive(worker, concurrency, state, samples, warmup=warmup, duration=duration,
                            max_requests=max_requests, watch=watch)
    finally:
        await session.close()


async def _drive(worker: Any, concurrency: int, state: dict[str, Any], samples: Samples, *, warmup: float,
                 duration: float, max_requests: int, watch: dict[str, int],
                 extra: Sequence[tuple[Any, Samples]] = ()) -> dict[str, Any]:
    """Warm up, then measure for ``duration`` s (or ``max_requests``), reading CPU at both edges."""
    tasks = [asyncio.create_task(factory()) for factory in [worker, *(e[0] for e in extra)]
             for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    cpu_before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    state["measuring"] = True
    deadline = started + duration
    while time.perf_counter() < deadline and len(samples.latency) + samples.errors < max_requests:
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.02)
    state["measuring"] = False
    elapsed = time.perf_counter() - started
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_after = {name: cpu_seconds(pid) for name, pid in watch.items()}
    state["stop"] = True
    # Let in-flight responses finish (bounded): they are not counted any more.
    done, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    cpu = {name: round(cpu_after[name] - cpu_before[name], 4) for name in watch}
    cpu["loadgen"] = round((self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime),
                           4)
    result = _result(samples, concurrency, elapsed)
    completed = result["completed"] + sum(len(e[1].latency) for e in extra)
    result["cpu_s"] = cpu
    # Per 1,000 requests of the main target; with a pair, the generator's and the simulator's CPU
    # served both, so they are divided by all requests.
    result["cpu_s_per_1000"] = {
        name: (round(1000.0 * value / (result["completed"] if name == "proxy" else completed), 4)
               if result["completed"] else None)
        for name, value in cpu.items()
    }
    if extra:
        result["pair"] = _result(extra[0][1], concurrency, elapsed)
    return result


def _result(samples: Samples, concurrency: int, elapsed: float) -> dict[str, Any]:
    completed = len(samples.latency)
    return {
        "concurrency": concurrency,
        "duration_s": round(elapsed, 4),
        "completed": completed,
        "errors": samples.errors,
        "statuses": {str(k): v for k, v in sorted(samples.statuses.items())},
        "rps": round(completed / elapsed, 2) if elapsed else 0.0,
        "latency_ms": summarize(samples.latency, scale=1000.0),
        "first_event_ms": summarize(samples.first_event, scale=1000.0),
        "gap_ms": summarize(samples.gaps, scale=1000.0),
        "events": samples.events,
        "self_reported_overhead_ms": summarize(samples.overhead_ms),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="full loopback URL, e.g. http://127.0.0.1:7071/api/v1/...")
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' header (repeatable)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured (upper bound)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="requests measured (upper bound)")
    parser.add_argument("--watch", action="append", default=[], help="NAME=PID of a server to read CPU from")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to that CPU")
    parser.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="start each connection after a random delay of up to this many seconds")
    parser.add_argument("--pair-url", default=None, help="also load this URL at the same time (e.g. direct)")
    parser.add_argument("--pair-header", action="append", default=[], help="extra header for --pair-url")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    target = Target.build(args.url, args.body.encode(), args.header)
    watch = {name: int(pid) for name, _, pid in (item.partition("=") for item in args.watch)}
    if args.client == "raw":
        pair = Target.build(args.pair_url, args.body.encode(), args.pair_header) if args.pair_url else None
        coro = run_raw(target, args.concurrency, warmup=args.warmup, duration=args.duration,
                       max_requests=args.max_requests, watch=watch, pair=pair,
                       stagger=min(args.stagger, args.warmup))
    else:
        coro = run_aiohttp(target, args.concurrency, warmup=args.warmup, duration=args.duration,
                           max_requests=args.max_requests, watch=watch)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is in the dev requirements
        result = asyncio.run(coro)
    result["client"] = args.client
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
