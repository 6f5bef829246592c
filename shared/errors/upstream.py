"""An upstream's error response, translated into the gateway's vocabulary.

Upstreams differ: Azure's front door sends ``{"error": {"code", "message"}}`` and a bare
``retry-after``; other OpenAI-compatible servers send a string ``error``, FastAPI's ``detail``,
nothing, or a proxy's HTML page. Callers (and the SDKs' typed exceptions) should see one shape:
OpenAI's four fields with one of OpenAI's types, a 429 that reads like the gateway's own, and an
upstream refusing the *gateway's* identity reported as the gateway's problem (502), not the caller's.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.errors.vocabulary import (
    AUTHENTICATION,
    INVALID_REQUEST,
    PERMISSION,
    RATE_LIMIT,
    SERVER,
    GatewayError,
    error_dict,
    upstream_auth_failed,
)
from shared.retry import parse_retry_after

if TYPE_CHECKING:
    from shared.upstream_http import UpstreamResponse

_TYPES = {401: AUTHENTICATION, 403: PERMISSION, 429: RATE_LIMIT}
# Codes that only repeat the status (Azure's "429") say nothing; OpenAI's name for it does.
_RATE_LIMIT_CODES = frozenset({None, "429", 429, "RateLimitExceeded", "TooManyRequests"})
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SNIPPET = 300


def error_type(status: int) -> str:
    """OpenAI's error type for an HTTP status."""
    return _TYPES.get(status, SERVER if status >= 500 else INVALID_REQUEST)


def upstream_error(response: UpstreamResponse, relayed: Mapping[str, str]) -> GatewayError:
    """The caller's answer to an upstream error status (after retries).

    ``relayed`` are the response's headers the gateway passes on (rate-limit state, request ids).
    """
    status = response.status_code
    if status in (401, 403):
        # The caller's key is never sent upstream: this is the gateway's own identity refused.
        return upstream_auth_failed(status, _message(response.content, status))
    headers = dict(relayed)
    headers["content-type"] = "application/json"
    if status == 429:
        waited = parse_retry_after(response.headers)
        if waited is not None:  # both hints, as the gateway's own 429 carries
            headers.setdefault("retry-after-ms", str(math.ceil(waited * 1000)))
            headers.setdefault("retry-after", str(max(1, math.ceil(waited))))
    body = openai_error_body(status, response.content)
    error = json.loads(body)["error"]  # complete now: the four fields, kept for logs and SSE
    return GatewayError(status, str(error["message"]), type=str(error["type"]), param=_text_or_none(error["param"]),
                        code=_text_or_none(error["code"]), headers=headers, body=body)


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def openai_error_body(status: int, body: bytes) -> bytes:
    """The upstream's error completed to OpenAI's shape; fields the upstream sent are kept."""
    data = _json(body)
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        code = "rate_limit_exceeded" if status == 429 else f"upstream_{status}"
        return json.dumps(error_dict(_message(body, status), type=error_type(status), code=code)).encode()
    complete = all(k in error for k in ("message", "type", "param", "code"))
    if complete and (status != 429 or error["code"] not in _RATE_LIMIT_CODES):
        return body
    error.setdefault("message", f"The upstream answered {status}.")
    error.setdefault("type", error_type(status))
    error.setdefault("param", None)
    error.setdefault("code", None)
    if status == 429 and error["code"] in _RATE_LIMIT_CODES:
        error["code"] = "rate_limit_exceeded"
    return json.dumps(data).encode()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _message(body: bytes, status: int) -> str:
    """The most readable message an error body holds, whatever its shape."""
    data = _json(body)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for found in (error, data.get("detail"), data.get("message")):
            text = _text_of(found)
            if text:
                return text
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return f"The upstream answered {status} with no details."
    if text.startswith("<") and (title := _TITLE.search(text)):
        text = title.group(1)
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()
    return f"The upstream answered {status}: {text[:_SNIPPET] or 'no details'}"


def _text_of(value: object) -> str:
    """A message from a string, or FastAPI's list of ``{"loc", "msg"}`` validation errors."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                where = ".".join(str(p) for p in item.get("loc") or ())
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
            elif isinstance(item, str):
                parts.append(item)
        return "; ".join(parts)
    return ""
