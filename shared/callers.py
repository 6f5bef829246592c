"""Who is calling: the identity per-caller limits, logs and Table rows are keyed on.

- With App Service Authentication on (the platform sets ``WEBSITE_AUTH_ENABLED=True``), the platform
  validates the Entra token, strips any client-sent ``X-MS-CLIENT-PRINCIPAL*`` headers and sets its
  own: only then is the principal id trusted.
- Otherwise each caller has its own function key, already checked by the Functions host. The key is
  found with the host's own rules (Azure/azure-functions-host, ``AuthenticationLevelHandler.
  GetAuthorizationKeyInfoAsync``): the ``x-functions-key`` header when the request has one (header
  names are case-insensitive), else the ``code`` query parameter (ASP.NET Core's query collection:
  names case-insensitive, ``+`` and ``%XX`` decoded); in both, the *first* value. The host then
  compares the value ordinally (case-sensitive), so the caller is named by a digest of exactly that
  value: the key itself never reaches logs or storage.
- What the host would read differently from any other parser is refused with 401 instead of
  guessed: more than one ``x-functions-key`` header or more than one ``code`` parameter (in any
  letter case, percent-encoded or not), or an empty key. A legitimate client never sends these; an
  attacker sends them to be validated under one key and counted under another.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from shared.errors import ambiguous_key

KEY_HEADER = "x-functions-key"
KEY_PARAM = "CODE"  # compared upper-cased, like .NET's OrdinalIgnoreCase


def easy_auth_enabled() -> bool:
    return os.environ.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true"


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of a header (Starlette's ``Headers`` keeps repeats; a plain mapping has one)."""
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        return list(getlist(name))
    return [value for key, value in headers.items() if key.lower() == name]


def _decode(component: bytes) -> str:
    """One query-string name or value as ASP.NET Core decodes it: ``+`` is a space, then ``%XX``."""
    return unquote_to_bytes(component.replace(b"+", b" ")).decode("utf-8", "replace")


def query_values(query: bytes | str, name: str) -> list[str]:
    """Every value of query parameter ``name`` (upper case), matched case-insensitively, in order.

    Parsed from the raw query string the way ASP.NET Core's ``QueryStringEnumerable`` does: pairs
    split on ``&`` only, a pair without ``=`` has an empty value, empty pairs are skipped.
    """
    raw = query.encode("latin-1") if isinstance(query, str) else query
    found: list[str] = []
    for pair in raw.split(b"&"):
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        if _decode(key).upper() == name:
            found.append(_decode(value))
    return found


def _digest(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def identify(headers: Mapping[str, str], query: bytes | str = b"") -> str:
    """The caller's identity; raises a 401 :class:`GatewayError` for an ambiguous function key.

    ``query`` is the raw query string (``request.scope["query_string"]``), not a parsed mapping:
    parsers disagree on repeats and letter case, and only the host's reading counts.
    """
    if easy_auth_enabled():
        principal = headers.get("x-ms-client-principal-id")
        if principal:
            return f"principal:{principal}"
    in_header = _header_values(headers, KEY_HEADER)
    in_query = query_values(query, KEY_PARAM)
    if len(in_header) > 1:
        raise ambiguous_key(f"{len(in_header)} x-functions-key headers")
    if len(in_query) > 1:
        raise ambiguous_key(f"{len(in_query)} 'code' query parameters")
    if in_header:  # the host reads the header whenever there is one, and then ignores the query
        key = in_header[0]
        if not key:
            raise ambiguous_key("the x-functions-key header is empty")
        return _digest(key)
    if in_query:
        if not in_query[0]:
            raise ambiguous_key("the 'code' query parameter is empty")
        return _digest(in_query[0])
    return "anonymous"
