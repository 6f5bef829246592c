"""``python -m devhost``: load the function app and serve it like ``func start``.

Order matters and follows Core Tools: settings go into the environment before
the app is imported (module-level code reads them), the port is bound before
the (slow) import so a busy port fails fast, and the banner is printed only
once the socket is listening, so whoever waits for it can connect right away.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.util
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType

from devhost.host_check import HostSettingError, own_hostnames
from devhost.hostjson import HostConfigError, load_host_config
from devhost.settings import SettingsError, apply_settings, read_local_settings

logger = logging.getLogger("devhost")

DEFAULT_PORT = 7071
LOG_LEVEL_ENV = "DEVHOST_LOG_LEVEL"
GRACEFUL_SHUTDOWN_SECONDS = 2


class _Terminated(Exception):
    """SIGTERM arrived (raised by our handler once uvicorn has shut down)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Local Azure Functions host.")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: Host.LocalHttpPort or 7071; 0 = any free)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--script-root", default=".", help="folder with function_app.py and host.json")
    parser.add_argument(
        "--log-level",
        default=os.environ.get(LOG_LEVEL_ENV, "info"),
        choices=["debug", "info", "warning", "error"],
        help=f"log level (default info, or ${LOG_LEVEL_ENV})",
    )
    return parser.parse_args(argv)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # SDK request logs and uvicorn's own lifecycle lines drown the function logs.
    for noisy in ("azure", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front (so a busy port is reported before importing the app)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _fast_impl(preferred: str, module: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else "auto"


def _http_protocol() -> type[asyncio.Protocol] | str:
    """httptools when installed, keeping what an absolute-form target names (devhost.absolute_form)."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from devhost.absolute_form import AbsoluteFormHttpToolsProtocol

    return AbsoluteFormHttpToolsProtocol


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def serve(args: argparse.Namespace) -> int:
    """Run the host until a signal stops it; returns the exit code."""
    script_root = Path(args.script_root).resolve()
    try:
        settings = read_local_settings(script_root)
        apply_settings(settings.values)
        host_config = load_host_config(script_root)
        host_names = own_hostnames(args.host, os.environ)
    except (SettingsError, HostConfigError, HostSettingError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 1
    port = args.port if args.port is not None else int(settings.host.get("LocalHttpPort", DEFAULT_PORT))
    try:
        sock = bind_socket(args.host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"devhost: port {port} on {args.host} is already in use by another process", file=sys.stderr)
        else:
            print(f"devhost: cannot listen on {args.host}:{port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    base_url = f"http://{_display_host(args.host)}:{port}"

    # Heavy imports only once we know we will serve.
    import uvicorn

    from devhost.discovery import load_functions
    from devhost.http_app import build_app, function_metadata
    from devhost.invocation import Invoker
    from devhost.queue_host import QueueHost
    from devhost.routing import RouteTemplateError
    from devhost.timers import TimerHost

    os.environ.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
    os.environ.setdefault("AzureWebJobsScriptRoot", str(script_root))
    os.chdir(script_root)
    try:
        index = load_functions(script_root)
    except Exception:
        print("devhost: failed to load the function app:", file=sys.stderr)
        traceback.print_exc()
        sock.close()
        return 1
    for warning in index.warnings:
        logger.warning(warning)

    invoker = Invoker(host_config.function_timeout, function_directory=str(script_root))
    queue_host = QueueHost(index.queues, host_config.queues, invoker)
    timer_host = TimerHost(index.timers, invoker)

    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        queue_host.start()
        timer_host.start()
        try:
            yield
        finally:
            await timer_host.stop()
            await queue_host.stop()

    def host_status() -> dict[str, object]:
        return {**queue_host.status(), **timer_host.status()}

    try:
        app = build_app(
            index, host_config.route_prefix, invoker, base_url=base_url, host_names=host_names, lifespan=lifespan,
            status=host_status, run_function=timer_host.run_now,
        )
    except RouteTemplateError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        sock.close()
        return 1
    print_banner(function_metadata(index, host_config.route_prefix, base_url), base_url)

    config = uvicorn.Config(
        app,
        loop=_fast_impl("uvloop", "uvloop"),
        http=_http_protocol(),
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level="debug" if args.log_level == "debug" else "warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        invoker.shutdown()
        sock.close()
    if invoker.threads_busy:
        # Sync handlers cannot be cancelled; do not let them hold the exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def print_banner(functions: list[dict[str, object]], base_url: str) -> None:
    """The function listing and the ready line, in Core Tools' shape."""
    lines = ["", "Functions:", ""]
    for item in functions:
        if item["trigger"] == "httpTrigger":
            methods = item["methods"]
            shown = ",".join(methods) if isinstance(methods, list) else "ALL"
            lines.append(f"\t{item['name']}: [{shown}] {item['url']}")
        else:
            lines.append(f"\t{item['name']}: {item['trigger']}")
        lines.append("")
    lines.append(f"Functions host listening on {base_url}")
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    return serve(args)
