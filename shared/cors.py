"""CORS with an exact-origin allowlist (``CORS_ALLOWED_ORIGINS``).

Handled in the app rather than by the platform so that it behaves the same under the local host,
Core Tools and Azure, and so that a refused origin gets a readable error instead of a silent block.
"""

from __future__ import annotations

from collections.abc import Mapping

EXPOSED_HEADERS = ", ".join((
    "x-request-id",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-gateway-overhead-ms",
    "location",
))
MAX_AGE_SECONDS = "600"


def same_origin(origin: str, host: str | None) -> bool:
    """A page served by this app calling back to it (the Origin's host is our Host)."""
    if not host:
        return False
    _, _, rest = origin.partition("://")
    return rest == host


def origin_allowed(origin: str, allowed: frozenset[str], host: str | None) -> bool:
    return origin.rstrip("/") in allowed or same_origin(origin, host)


def response_headers(origin: str) -> dict[str, str]:
    return {
        "access-control-allow-origin": origin,
        "access-control-expose-headers": EXPOSED_HEADERS,
        "vary": "Origin",
    }


def preflight_headers(origin: str, methods: tuple[str, ...], request_headers: Mapping[str, str]) -> dict[str, str]:
    headers = response_headers(origin)
    headers["access-control-allow-methods"] = ", ".join(methods)
    # The openai JS SDK sends several x-stainless-* headers; echoing what the browser asks for,
    # for an allowed origin only, is the usual way to let it through.
    asked = request_headers.get("access-control-request-headers")
    if asked:
        headers["access-control-allow-headers"] = asked
    headers["access-control-max-age"] = MAX_AGE_SECONDS
    return headers
