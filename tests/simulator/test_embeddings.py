"""Embeddings through the official SDK (base64 by default) and Azure's input limits."""

from __future__ import annotations

import math

import openai
import pytest


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_default_base64_decodes_to_unit_vectors(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert b'"embedding":"' in raw.content  # the SDK asked for base64 on the wire
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1]
    first, second = (d.embedding for d in result.data)
    assert len(first) == 1536
    assert abs(_norm(first) - 1) < 1e-5 and abs(_norm(second) - 1) < 1e-5
    assert first != second
    assert abs(sum(a * b for a, b in zip(first, second, strict=True))) < 0.3
    assert result.usage.prompt_tokens == 3  # ceil(5/4) + ceil(4/4)


def test_float_matches_base64_and_is_deterministic(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(model="text-embedding-3-small", input="same text", encoding_format="float")
    again = client.embeddings.create(model="text-embedding-3-small", input="same text", encoding_format="float")
    via_b64 = client.embeddings.create(model="text-embedding-3-small", input="same text")
    assert as_float.data[0].embedding == again.data[0].embedding == via_b64.data[0].embedding


def test_dimensions_and_large_model(client: openai.OpenAI) -> None:
    small = client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=256)
    assert len(small.data[0].embedding) == 256
    assert abs(_norm(small.data[0].embedding) - 1) < 1e-5
    large = client.embeddings.create(model="text-embedding-3-large", input="x")
    assert len(large.data[0].embedding) == 3072
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=5000)


def test_token_array_inputs(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]], dimensions=64)
    assert len(result.data) == 2 and result.usage.prompt_tokens == 5
    assert result.data[0].embedding != result.data[1].embedding


def test_azure_input_limits(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="2048"):
        client.embeddings.create(model="text-embedding-3-small", input=["a"] * 2049)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 8192"):
        client.embeddings.create(model="text-embedding-3-small", input="x" * (8192 * 4 + 1))
    with pytest.raises(openai.BadRequestError, match="300000"):
        client.embeddings.create(model="text-embedding-3-small", input=["y" * 8000 * 4] * 38)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input="")
    ok = client.embeddings.create(model="text-embedding-3-small", input=["a"] * 2048, dimensions=8)
    assert len(ok.data) == 2048


def test_chat_deployment_cannot_embed(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="gpt-4o-mini", input="x")
    assert caught.value.code == "OperationNotSupported"
