"""Embeddings converted to the encoding the caller asked for, and left alone when they already are."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from shared.embeddings_format import asked_encoding, in_asked_encoding

VECTOR = [0.5, -0.25, 0.125]
ENCODED = base64.b64encode(struct.pack("<3f", *VECTOR)).decode()


def reply(*vectors: object) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return json.dumps({"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 2}}).encode()


def test_asked_encoding_defaults_to_float() -> None:
    assert (asked_encoding(None), asked_encoding("float"), asked_encoding("base64")) == ("float", "float", "base64")


def test_a_reply_in_the_asked_encoding_is_the_same_bytes() -> None:
    floats, text = reply(VECTOR), reply(ENCODED)
    assert in_asked_encoding(floats, "float") is floats
    assert in_asked_encoding(text, "base64") is text


def test_floats_become_base64_and_back() -> None:
    as_base64 = json.loads(in_asked_encoding(reply(VECTOR, VECTOR), "base64"))
    assert [d["embedding"] for d in as_base64["data"]] == [ENCODED, ENCODED]
    assert as_base64["usage"] == {"prompt_tokens": 2} and as_base64["model"] == "m"
    as_floats = json.loads(in_asked_encoding(reply(ENCODED), "float"))
    assert as_floats["data"][0]["embedding"] == VECTOR


@pytest.mark.parametrize("body", [b"not json", b'{"data": "x", "embedding": ["a"]}', reply("***"),
                                  reply(["a", "b"])])
def test_what_cannot_be_converted_is_relayed_as_it_came(body: bytes) -> None:
    assert in_asked_encoding(body, "float") == body
    assert in_asked_encoding(body, "base64") == body
