"""Telling a timeout from a lost connection, whatever HTTP transport carried the request.

Callers deserve "out of time" (504, ``upstream_timeout``) for a timeout and "unreachable" (502,
``upstream_unreachable``) for a connection refused, reset or cut short. aiohttp (the gateway's
transport, :mod:`shared.upstream_http`) raises subclasses of ``TimeoutError`` for its timeouts
(connect and read) and ``aiohttp.ClientError``/``OSError`` for the rest; httpx2 (a response built by
the SDK, or a test's) raises ``httpx2.TimeoutException``.
"""

from __future__ import annotations

import sys


def is_timeout(exc: BaseException) -> bool:
    """True for a timeout, False for any other transport failure."""
    if isinstance(exc, TimeoutError):
        return True
    httpx2 = sys.modules.get("httpx2")  # only an httpx2 transport (already imported) raises its errors
    return httpx2 is not None and isinstance(exc, httpx2.TimeoutException)
