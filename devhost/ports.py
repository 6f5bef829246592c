"""Small helpers about local TCP ports and waiting for services.

Several engineers run test suites on the same machine at once, so nothing may
assume a fixed port is free: tests ask the kernel for free ports, and the
stack checks ports before it starts anything so a clash is reported as such
rather than as a confusing child crash.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

LOCALHOST = "127.0.0.1"


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """Distinct ports that were free a moment ago (all held open while choosing)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = LOCALHOST) -> int:
    """One port that was free a moment ago."""
    return free_ports(1, host)[0]


def is_listening(port: int, host: str = LOCALHOST, timeout: float = 0.25) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get_status(url: str, timeout: float = 1.0) -> tuple[int, dict[str, str]] | None:
    """Status and headers of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}
    except (OSError, ValueError):
        return None


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.1,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll ``ready`` until it is true, ``abort`` returns a reason, or time runs out.

    Returns True when ready; raises RuntimeError with abort's reason.
    """
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if abort is not None:
            reason = abort()
            if reason:
                raise RuntimeError(reason)
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
