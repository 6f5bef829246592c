"""The floor: the least a Python relay in front of the simulator can cost.

A pass-through served by the same server stack as the local host (uvicorn with uvloop and
httptools, a Starlette app, access log off) that relays every request with one bare
``aiohttp.ClientSession`` and no policy at all: no validation, no allowlists, no retries, no
logging, no telemetry. The gateway's added latency divided by this one's isolates what Azure
would also run, the gateway's own code and its upstream client, from the hop any Python proxy
pays (a server, a client, a second connection).

Run ``python -m bench.floor --port P --upstream http://127.0.0.1:S/openai/v1 --api-key K``: it
answers ``POST /openai/v1/<path>`` (and ``GET /health``) by sending the same bytes to
``<upstream>/<path>`` with the upstream's key and relaying status, content type and body; a
streamed body is relayed chunk by chunk as the upstream's socket yields it.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

PREFIX = "/openai/v1/"
# Response headers the relay passes on: enough for the load generator and the SDKs, nothing more.
PASSED_HEADERS = ("content-type", "x-request-id")


def build_app(upstream: str, api_key: str) -> Starlette:
    """The relay as an ASGI app; its client session lives as long as the app is served."""
    base = upstream.rstrip("/") + "/"
    sessions: list[aiohttp.ClientSession] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Pool limits off, as the gateway's client is sized for far more than the bench's 256.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        sessions.append(session)
        try:
            yield
        finally:
            await session.close()

    async def relay(request: Request) -> Response:
        body = await request.body()
        url = base + request.path_params["path"]
        headers = {"content-type": request.headers.get("content-type", "application/json"), "api-key": api_key}
        upstream_response = await sessions[0].post(url, data=body, headers=headers)
        passed = {name: upstream_response.headers[name] for name in PASSED_HEADERS
                  if name in upstream_response.headers}
        if upstream_response.headers.get("content-type", "").startswith("text/event-stream"):
            async def chunks() -> AsyncIterator[bytes]:
                try:
                    async for chunk in upstream_response.content.iter_any():
                        yield chunk
                finally:
                    upstream_response.release()

            return StreamingResponse(chunks(), status_code=upstream_response.status, headers=passed)
        try:
            content = await upstream_response.read()
        finally:
            upstream_response.release()
        return Response(content, status_code=upstream_response.status, headers=passed)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route(PREFIX + "{path:path}", relay, methods=["POST"]), Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL to relay to, e.g. the simulator's /openai/v1")
    parser.add_argument("--api-key", default="", help="sent upstream as the api-key header")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sock = socket.create_server((args.host, args.port))
    # The local host's own server settings (devhost/server.py), so the two differ only in what runs inside.
    config = uvicorn.Config(build_app(args.upstream, args.api_key), loop="uvloop", http="httptools", lifespan="on",
                            access_log=False, log_config=None, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
