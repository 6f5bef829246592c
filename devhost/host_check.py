"""Answer only requests addressed to this host by one of its own names (DNS rebinding).

The local host is keyless and listens on loopback, which a browser treats as just another origin.
A page on ``evil.test`` that re-points its DNS name at 127.0.0.1 is, to the browser, the same origin
as the host: its GETs carry no ``Origin`` header, so CORS never runs, and the browser hands the
answers to the page. The one thing such a request cannot hide is its name: ``Host: evil.test:7071``.
In Azure the platform routes by host name, so only the app's own names arrive; this module gives the
local host the same rule, checked before routing so that nothing of the app runs for a foreign name.

Own names: the loopback names and the platform's ``WEBSITE_HOSTNAME`` (the same definitions the
gateway's CORS check uses, :mod:`shared.cors`), the address the host was told to bind (unless it is a
wildcard), and the names in ``DEVHOST_ALLOWED_HOSTS`` (comma-separated, for a host reached by another
name, such as a container's service name). Any port is accepted: a browser's Host always carries the
port it connected to, so the port tells nothing about rebinding, and port forwarding legitimately
changes it.

Answers (RFC 9110 section 15.5.20, RFC 9112 section 3.2): a Host that is missing, repeated or not
readable as one ``name[:port]`` (userinfo, percent-encoding, spaces, a path) is a 400
``invalid_host_header``; a readable name that is not ours is a 421 ``misdirected_request``, the status
HTTP has for "this server does not answer for that name". Names are compared in lower case with one
trailing dot removed (``LOCALHOST.`` is ``localhost``); IPv6 literals in their canonical form. An
absolute-form request target (``GET http://name/...``) names the host instead of the Host header, as
RFC 9112 section 3.2.2 requires.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.cors import LOOPBACK_HOSTNAMES, app_hostnames
from shared.errors import GatewayError

logger = logging.getLogger("devhost.http")

ALLOWED_HOSTS_ENV = "DEVHOST_ALLOWED_HOSTS"
WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})

# What a Host value may look like: a registered name or IPv4 address (letters, digits, ``-._``), or a
# bracketed IPv6 literal, then an optional decimal port. Anything else cannot be a name we answer to.
_HOST_VALUE = re.compile(r"(?P<name>[a-z0-9._-]+|\[(?P<ipv6>[0-9a-f:.]+)\])(?::(?P<port>[0-9]{1,5}))?")
_NAME = re.compile(r"[a-z0-9._-]+")


class HostSettingError(ValueError):
    """``DEVHOST_ALLOWED_HOSTS`` holds something that is not a host name."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not answered: its status, error code and a readable message."""

    status: int
    code: str
    message: str


def _canonical(name: str, ipv6: str | None) -> str | None:
    """A name as compared: lower case, one trailing dot dropped, IPv6 canonical; None if not a name."""
    if ipv6 is not None:
        try:
            return ipaddress.IPv6Address(ipv6).compressed
        except ValueError:
            return None
    return name[:-1] if name.endswith(".") else name


def _setting_name(entry: str) -> str:
    """One name from ``DEVHOST_ALLOWED_HOSTS`` or ``--host``, canonical; a bare IPv6 address is allowed."""
    entry = entry.strip().lower()
    bracketed = entry.startswith("[") and entry.endswith("]")
    ipv6 = entry[1:-1] if bracketed else entry if ":" in entry else None
    name = _canonical(entry, ipv6)
    if name is None or (ipv6 is None and not _NAME.fullmatch(entry)):
        raise HostSettingError(f"{entry!r} ({ALLOWED_HOSTS_ENV} or --host) is not a host name (no scheme or port)")
    return name


def own_hostnames(bind_host: str, env: Mapping[str, str]) -> frozenset[str]:
    """Every name this host answers to (see the module docstring)."""
    names = set(LOOPBACK_HOSTNAMES) | app_hostnames()
    if bind_host.strip("[]") not in WILDCARD_ADDRESSES:
        names.add(_setting_name(bind_host))
    names.update(_setting_name(entry) for entry in env.get(ALLOWED_HOSTS_ENV, "").split(",") if entry.strip())
    return frozenset(names)


def absolute_form_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form request target (``http://name:port/path``), else None.

    Split by hand rather than with ``urlsplit``, which raises on a malformed IPv6 authority: this runs
    inside the HTTP protocol, where an exception would drop the connection instead of answering 400.
    """
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return None
    return re.split(rb"[/?#]", rest, maxsplit=1)[0]


def judge(host_values: list[bytes], names: frozenset[str]) -> Refusal | None:
    """None when the request names exactly one of ``names``; otherwise why it is refused."""
    if len(host_values) != 1:
        what = "no Host header" if not host_values else f"{len(host_values)} Host headers"
        return Refusal(400, "invalid_host_header", f"The request has {what}; exactly one is required.")
    value = host_values[0].decode("latin-1")
    parsed = _HOST_VALUE.fullmatch(value.lower())
    if parsed is None or (parsed["port"] is not None and int(parsed["port"]) > 65535):
        return Refusal(400, "invalid_host_header", f"The Host header {value!r} is not a host name and port.")
    name = _canonical(parsed["name"], parsed["ipv6"])
    if name is None:
        return Refusal(400, "invalid_host_header", f"The Host header {value!r} is not a host name and port.")
    if name not in names:
        return Refusal(421, "misdirected_request",
                       f"This local host does not answer for {value!r}: it answers for "
                       f"{', '.join(sorted(names))}. Add a name to {ALLOWED_HOSTS_ENV} to reach it by that name.")
    return None


def _host_values(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    return [value for key, value in headers if key.lower() == b"host"]


class HostCheck:
    """ASGI middleware: refuse a request whose Host is not one of the host's names, before routing."""

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authority = absolute_form_authority(scope.get("raw_path") or b"/")
        values = [authority] if authority is not None else _host_values(scope["headers"])
        refusal = judge(values, self.names)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        client = scope.get("client")
        logger.warning("refused %s %s from %s: %s (request id %s)", scope.get("method", "WEBSOCKET"),
                       scope.get("path"), client[0] if client else "?", refusal.message, request_id)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = GatewayError(refusal.status, refusal.message, code=refusal.code).to_json()
        await send({"type": "http.response.start", "status": refusal.status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
