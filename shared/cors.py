"""CORS with an exact-origin allowlist (``CORS_ALLOWED_ORIGINS``).

Handled in the app rather than by the platform so that it behaves the same under the local host,
Core Tools and Azure, and so that a refused origin gets a readable error instead of a silent block.

Besides the allowlist, the app's own pages (the sample page at ``/api/ui/``) may call it. "Own" is
decided from the ``Host`` header only when that host name is one of ours: a loopback name, or the
name the platform gives the app (``WEBSITE_HOSTNAME``). ``Host`` alone proves nothing: with DNS
rebinding a page on ``evil.test`` re-points its name at 127.0.0.1 and then sends
``Host: evil.test:7071`` with ``Origin: http://evil.test:7071``, which match each other perfectly.
Other names the app is reached by (custom domains) go in ``CORS_ALLOWED_ORIGINS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from shared.lazy import process_wide

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


# Names no DNS answer can give a page: the browser resolves them to this machine itself.
LOOPBACK_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@process_wide
def app_hostnames() -> frozenset[str]:
    """The app's own host name in Azure (the platform sets ``WEBSITE_HOSTNAME``); none locally."""
    name = os.environ.get("WEBSITE_HOSTNAME", "").strip().lower()
    return frozenset({name}) if name else frozenset()


def same_origin(origin: str, host: str | None, app_hosts: frozenset[str] | None = None) -> bool:
    """A page served by this app calling back to it: the Origin is our Host, and the Host is one of our names."""
    if not host:
        return False
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or authority.lower() != host.lower():
        return False
    try:
        hostname = urlsplit(f"//{host}").hostname
    except ValueError:
        return False
    names = app_hostnames() if app_hosts is None else app_hosts
    return hostname is not None and (hostname in LOOPBACK_HOSTNAMES or hostname in names)


def origin_allowed(origin: str, allowed: frozenset[str], host: str | None,
                   app_hosts: frozenset[str] | None = None) -> bool:
    return origin.rstrip("/") in allowed or same_origin(origin, host, app_hosts)


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
