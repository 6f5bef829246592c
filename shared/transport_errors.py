"""Telling a real timeout from a lost connection, whatever HTTP transport carried the request.

The SDK's aiohttp transport maps every aiohttp connection error, refused connections and peers
hanging up included, to a *connect timeout*; callers deserve "unreachable" (502) for those and
"out of time" (504) only for real timeouts. The original exception stays in the ``__cause__`` chain.
"""

from __future__ import annotations

import asyncio


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_real_timeout(exc: BaseException) -> bool:
    """True unless something in the cause chain says the connection failed rather than waited."""
    import aiohttp

    for cause in _causes(exc)[1:]:
        if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
            return True
        if isinstance(cause, (aiohttp.ClientConnectionError, ConnectionError, OSError)):
            return False
    return True
