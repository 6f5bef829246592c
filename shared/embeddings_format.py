"""Embeddings in the encoding the caller asked for, whatever the upstream sent.

OpenAI-compatible upstreams may ignore ``encoding_format``. The JavaScript SDK asks for ``base64``
by default and decodes every ``embedding`` as base64 without checking its type, so a float list
relayed as is becomes a garbage vector with no error; a caller that asked for floats and got a
string fails the other way. Azure answers as asked, so the common case costs one byte search.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import Literal

Encoding = Literal["float", "base64"]

# The first vector tells the encoding: `"embedding": [` a float list, `"embedding": "` a base64
# string (float32, little-endian). One upstream answer uses one encoding, and the first vector sits
# near the start of the body, so a large reply is never scanned to the end to find out.
_FIRST_VECTOR = re.compile(rb'"embedding"\s*:\s*([\["])')
_OPENER: dict[Encoding, bytes] = {"float": b"[", "base64": b'"'}


def asked_encoding(value: object) -> Encoding:
    """The encoding a request asked for; anything but ``"base64"`` means floats, as in OpenAI's API
    (an invalid value never gets here: the upstream refuses it first)."""
    return "base64" if value == "base64" else "float"


def _to_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _to_floats(text: str) -> list[float]:
    raw = base64.b64decode(text, validate=True)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def in_asked_encoding(body: bytes, wanted: Encoding) -> bytes:
    """``body`` (a 200 embeddings reply) with every ``embedding`` in ``wanted``; unchanged when it
    already is, or when it is not an embeddings list at all (relayed as it came, never broken)."""
    first = _FIRST_VECTOR.search(body)
    if first is None or first.group(1) == _OPENER[wanted]:
        return body
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return body
    try:
        for item in data:
            vector = item.get("embedding") if isinstance(item, dict) else None
            if wanted == "base64" and isinstance(vector, list):
                item["embedding"] = _to_base64(vector)
            elif wanted == "float" and isinstance(vector, str):
                item["embedding"] = _to_floats(vector)
    except (ValueError, struct.error):  # not numbers, not base64: nothing we can honestly convert
        return body
    return json.dumps(payload, separators=(",", ":")).encode()
