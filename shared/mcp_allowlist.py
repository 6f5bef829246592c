"""Which MCP servers the upstream may be told to call (``MCP_ALLOWED_SERVERS``).

The upstream, not the gateway, connects to an MCP server, so a URL is judged the way an HTTP client
will resolve it: scheme and host case, default ports, a trailing dot on the host, percent-encoded
unreserved characters and dot segments are normalised before matching. Spellings that clients resolve
differently from one another (userinfo, backslashes, encoded ``/`` or ``\\``, control characters,
empty path segments, non-ASCII, numeric hosts that are not plain IPv4) are refused rather than
guessed at: refusing a valid URL costs a caller a rewrite, allowing a misread one costs the allowlist.

Allowlist entries with ``://`` are URL prefixes (same scheme, host and port; path under the prefix on
a segment boundary); other entries are connector ids, matched exactly.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from shared.config import Settings
from shared.errors import mcp_server_not_allowed
from shared.validation import fold_key, refuse_lookalike_keys

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# The fields that say which server a tool reaches; every one present must be allowed.
IDENTITY_FIELDS = ("server_url", "connector_id")
_TOOL_FIELDS = frozenset({"type", *IDENTITY_FIELDS})

_PRINTABLE_ASCII = re.compile(r"[!-~]+")
_ESCAPE = re.compile(r"%(.{0,2})")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DNS_NAME = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
# WHATWG parsers read a host whose last label looks numeric as an IPv4 address (``0x7f.1``, ``2130706433``).
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


@dataclass(frozen=True, slots=True)
class ServerUrl:
    """A URL reduced to what decides where a request goes and which resource it names."""

    scheme: str
    host: str
    port: int
    path: str

    def within(self, rule: ServerUrl) -> bool:
        if (self.scheme, self.host, self.port) != (rule.scheme, rule.host, rule.port):
            return False
        base = rule.path.rstrip("/")
        return not base or self.path == base or self.path.startswith(base + "/")


def _host(raw: str) -> str | None:
    if raw.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1] if raw.endswith(']') else '')}]"
        except ValueError:
            return None
    host = raw.lower().removesuffix(".")
    if not _DNS_NAME.fullmatch(host):
        return None
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            return None
    return host


def _unescape_unreserved(path: str) -> str | None:
    """Decode escapes of unreserved characters (RFC 3986 6.2.2.2); refuse escapes clients disagree on."""
    out: list[str] = []
    position = 0
    for match in _ESCAPE.finditer(path):
        hex_digits = match.group(1)
        if not _HEX2.fullmatch(hex_digits):
            return None
        char = chr(int(hex_digits, 16))
        if char in "/\\%" or not "!" <= char <= "~":
            # An encoded separator, control or "%" (decoded twice by some servers, "%252e" becomes "."):
            # servers differ on what it means.
            return None
        out.append(path[position:match.start()])
        out.append(char if char in _UNRESERVED else "%" + hex_digits.upper())
        position = match.end()
    out.append(path[position:])
    return "".join(out)


def _path(raw: str) -> str | None:
    decoded = _unescape_unreserved(raw or "/")
    if decoded is None or not decoded.startswith("/"):
        return None
    segments: list[str] = []
    parts = decoded[1:].split("/")
    for index, segment in enumerate(parts):
        bare = segment.split(";", 1)[0]  # "..;" is ".." to servers that strip path parameters
        if bare == "..":
            if segments:
                segments.pop()
        elif bare == ".":
            pass
        elif not segment and index != len(parts) - 1:
            return None  # "//": some servers merge it, which would change what ".." removes
        else:
            segments.append(segment)
            continue
        if index == len(parts) - 1:
            segments.append("")  # a trailing dot segment leaves a directory
    return "/" + "/".join(segments)


def normalize_url(url: str) -> ServerUrl | None:
    """The normalised form of an http(s) URL, or None when it cannot be read one way only."""
    return None if len(url) > MAX_URL_CHARS else _normalize(url)


@lru_cache(maxsize=256)  # the same few servers come back on every request; keys are short (checked above)
def _normalize(url: str) -> ServerUrl | None:
    if not _PRINTABLE_ASCII.fullmatch(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or url[: len(scheme) + 3].lower() != scheme + "://":
        return None
    netloc = parts.netloc
    if not netloc or "@" in netloc or "%" in netloc:
        return None
    host_part, _, port_part = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not host_part:
        host_part, port_part = netloc, ""
    host = _host(host_part)
    if host is None or (port_part and not port_part.isdigit()):
        return None
    port = int(port_part) if port_part else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        return None
    path = _path(parts.path)
    return None if path is None else ServerUrl(scheme, host, port, path)


@dataclass(frozen=True, slots=True)
class McpAllowlist:
    urls: tuple[ServerUrl, ...]
    connectors: frozenset[str]

    def allows_url(self, url: str) -> bool:
        target = normalize_url(url)
        return target is not None and any(target.within(rule) for rule in self.urls)


@lru_cache(maxsize=8)
def allowlist(entries: tuple[str, ...]) -> McpAllowlist:
    urls: list[ServerUrl] = []
    connectors: set[str] = set()
    for entry in entries:
        if "://" not in entry:
            connectors.add(entry)
        elif (rule := normalize_url(entry)) is not None:
            urls.append(rule)
        else:
            log.warning("MCP_ALLOWED_SERVERS entry %r is not a plain http(s) URL; it allows nothing", entry)
    return McpAllowlist(tuple(urls), frozenset(connectors))


def mcp_server_allowed(server_url: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``server_url`` resolves to an allowed server, under an allowed path prefix."""
    return allowlist(allowed).allows_url(server_url)


def _is_mcp(tool: Mapping[str, Any]) -> bool:
    kind = tool.get("type")
    named = isinstance(kind, str) and fold_key(kind).strip(" \t\r\n\x00") == "mcp"
    return named or any(tool.get(field) is not None for field in IDENTITY_FIELDS)


def check_mcp_tools(tools: Sequence[Mapping[str, Any]] | None, settings: Settings) -> None:
    """Every MCP tool names at least one server, and every server it names is allowed.

    A tool counts as MCP when its type reads ``mcp`` in any case or spacing, or when it carries a
    server field at all: the upstream might accept either, so the gateway judges both.
    """
    policy = allowlist(settings.mcp_allowed_servers)
    for index, tool in enumerate(tools or ()):
        where = f"tools[{index}]"
        refuse_lookalike_keys(tool, _TOOL_FIELDS, where)
        if not _is_mcp(tool):
            continue
        url, connector = tool.get("server_url"), tool.get("connector_id")
        if url is None and connector is None:
            raise mcp_server_not_allowed(None, f"{where}.server_url")
        if url is not None and not (isinstance(url, str) and policy.allows_url(url)):
            raise mcp_server_not_allowed(url, f"{where}.server_url")
        if connector is not None and not (isinstance(connector, str) and connector in policy.connectors):
            raise mcp_server_not_allowed(connector, f"{where}.connector_id")
