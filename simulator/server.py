"""Run the app under uvicorn tuned for loopback benchmarks, and announce readiness on stdout."""

from __future__ import annotations

import logging
import socket

import uvicorn

from .app import create_app
from .config import SimulatorConfig
from .wire import ConnectionAbort


class _QuietAborts(logging.Filter):
    """Scripted connection aborts are not server errors; keep them out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionAbort))


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, announce: str) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self._announce, flush=True)


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn so port 0 works and the ready line shows the real port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(config: SimulatorConfig) -> None:
    """Blocking: serve until SIGINT/SIGTERM."""
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    shown_host = f"[{config.host}]" if ":" in config.host else config.host
    uv_config = uvicorn.Config(
        create_app(config),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level=config.log_level,
        workers=1,
        backlog=2048,
        timeout_keep_alive=75,  # outlive client pools so benchmarks do not race idle closes
        timeout_graceful_shutdown=1,  # hanging/streaming fault requests must not block exit
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietAborts())
    server = _AnnouncingServer(uv_config, f"simulator listening on http://{shown_host}:{port}")
    server.run(sockets=[sock])  # uvicorn installs its signal handlers and the uvloop loop
