"""The caller gets OpenAI's behaviour whoever answers upstream (issue #12, findings 1-3).

The simulator plays upstreams unlike itself through its control API: one that ignores
``encoding_format``, one that ends a stream cleanly before its terminator, and ones whose errors
are not OpenAI-shaped (Azure's bare ``{"code", "message"}``, a string ``error``, FastAPI's
``detail``, an empty body, an HTML page from a proxy). Everything goes through the local host.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from devhost.stack import Stack
from tests.e2e.conftest import ROOT, Sim

EMBED = "text-embedding-3-small"
MESSAGES = [{"role": "user", "content": "Tell me something"}]


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _reference_vectors(client: openai.OpenAI, texts: list[str]) -> list[list[float]]:
    reply = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    return [list(item.embedding) for item in reply.data]


# --- finding 1: embeddings arrive in the encoding the caller asked for ----------------------------

def test_base64_asked_float_answered_is_base64(client: openai.OpenAI, http: httpx.Client, sim: Sim) -> None:
    texts = ["first text", "second text"]
    expected = _reference_vectors(client, texts)
    sim.configure(embedding_format="float")  # an upstream that ignores encoding_format

    # What the JavaScript SDK sends by default: it decodes every `embedding` as base64.
    reply = http.post("/api/v1/embeddings", json={"model": EMBED, "input": texts, "encoding_format": "base64"})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [item["index"] for item in data] == [0, 1]
    for item, vector in zip(data, expected, strict=True):
        assert isinstance(item["embedding"], str), "a float list reached a caller that asked for base64"
        assert _floats(item["embedding"]) == pytest.approx(vector, rel=1e-6, abs=1e-7)

    sdk = client.embeddings.create(model=EMBED, input=texts, encoding_format="base64")
    assert all(isinstance(item.embedding, str) for item in sdk.data)


def test_float_asked_base64_answered_is_float(client: openai.OpenAI, sim: Sim) -> None:
    texts = ["only text"]
    expected = _reference_vectors(client, texts)
    sim.configure(embedding_format="base64")
    reply = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    vector = reply.data[0].embedding
    assert isinstance(vector, list) and all(isinstance(x, float) for x in vector)
    assert vector == pytest.approx(expected[0], rel=1e-6, abs=1e-7)
    # No encoding_format means float, as in OpenAI's API.
    plain = httpx.post(f"{client.base_url}embeddings", json={"model": EMBED, "input": texts}, timeout=30).json()
    assert plain["data"][0]["embedding"] == pytest.approx(expected[0], rel=1e-6, abs=1e-7)


# --- finding 2: a stream that ends before its terminator is an error, not a finished stream -------

def _last_event(body: str) -> str:
    return [event for event in body.split("\n\n") if event.strip()][-1]


def test_chat_stream_without_done_ends_with_error(client: openai.OpenAI, http: httpx.Client, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="end_early", after_chunks=3)
    with pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass
    assert "before" in str(info.value.message)

    sim.fault(path="chat/completions", kind="end_early", after_chunks=3)
    reply = http.post("/api/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES,
                                                         "stream": True})
    last = _last_event(reply.text)
    assert last.startswith("event: error\n"), reply.text
    assert json.loads(last.split("data: ", 1)[1])["error"]["code"] == "upstream_stream_incomplete"


def test_responses_stream_without_terminal_event_ends_with_error(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="responses", kind="end_early", after_chunks=4)
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for event in client.responses.create(model="gpt-4o-mini", input="Tell me", stream=True):
            seen.append(event.type)
    assert seen and "response.completed" not in seen


def test_complete_streams_still_end_cleanly(client: openai.OpenAI, sim: Sim) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    events = [e.type for e in client.responses.create(model="gpt-4o-mini", input="Tell me", stream=True)]
    assert events[-1] == "response.completed"


# --- finding 3: one condition, one shape, whoever answered ----------------------------------------

def test_relayed_429_looks_like_the_gateways_own(client: openai.OpenAI, sim: Sim) -> None:
    # Azure's front door: only `retry-after` in seconds, its own code "429", and the reset headers.
    sim.fault(path="chat/completions", kind="status", status=429, count=0,
              headers={"retry-after": "1", "x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "800ms"})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = info.value
    assert (error.code, error.type) == ("rate_limit_exceeded", "rate_limit_error")
    headers = error.response.headers
    assert headers["retry-after"] == "1" and headers["retry-after-ms"] == "1000"
    assert headers["x-ratelimit-reset-requests"] == "1s" and headers["x-ratelimit-reset-tokens"] == "800ms"


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_refusing_the_gateway_is_502_not_the_callers_fault(
        client: openai.OpenAI, sim: Sim, status: int) -> None:
    sim.fault(path="chat/completions", kind="status", status=status,
              body={"error": {"code": "PermissionDenied", "message": "The principal lacks the required data action"}})
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = info.value
    assert error.status_code == 502, "the caller's key was never sent upstream: it must not be blamed"
    assert (error.code, error.type) == ("upstream_auth_failed", "server_error")
    assert "role" in error.message and "principal lacks" in error.message


# (fault, expected status, type, message part): bodies other OpenAI-compatible upstreams send.
ODD_BODIES = [
    ({"status": 404, "body": {"error": "model 'llama9' not found"}}, 404, "invalid_request_error",
     "model 'llama9' not found"),
    ({"status": 422, "body": {"detail": "Input should be a valid list"}}, 422, "invalid_request_error",
     "Input should be a valid list"),
    ({"status": 400, "body": {"detail": [{"loc": ["body", "input"], "msg": "field required"}]}}, 400,
     "invalid_request_error", "field required"),
    ({"status": 400, "raw_body": ""}, 400, "invalid_request_error", "400"),
    ({"status": 502, "count": 0, "raw_body": "<html><head><title>502 Bad Gateway</title></head>"
      "<body><center>nginx</center></body></html>", "headers": {"content-type": "text/html"}}, 502,
     "server_error", "502 Bad Gateway"),
]


@pytest.mark.parametrize(("fault", "status", "kind", "message"), ODD_BODIES,
                         ids=["string-error", "detail-string", "detail-list", "empty", "html"])
def test_odd_upstream_error_bodies_become_openai_errors(
        http: httpx.Client, sim: Sim, fault: dict[str, object], status: int, kind: str, message: str) -> None:
    sim.fault(path="chat/completions", kind="status", **fault)
    reply = http.post("/api/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == kind
    assert message in error["message"]
    assert "<html" not in error["message"]


def test_azure_bare_error_is_completed_with_an_openai_type(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="status", status=400,
              body={"error": {"code": "OperationNotSupported", "message": "not for this model"}})
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert (info.value.code, info.value.type) == ("OperationNotSupported", "invalid_request_error")


# --- finding 1 with the official JavaScript SDK (it asks for base64 by default) --------------------

JS_EMBEDDINGS = Path(__file__).with_name("js_embeddings.mjs")


def _node_with_openai() -> str:
    """node, with the ``openai`` package from package.json; skipped locally without them, failed in CI."""
    binary = shutil.which("node")
    missing = "Node.js is not installed" if binary is None else (
        "the openai npm package is not installed (run `npm ci`)"
        if not (ROOT / "node_modules" / "openai" / "package.json").exists() else None)
    if missing is not None or binary is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{missing}: CI must run the JavaScript SDK test", pytrace=False)
        pytest.skip(missing)
    return binary


def _js_vectors(node: str, base_url: str, texts: list[str]) -> list[list[float]]:
    done = subprocess.run([node, str(JS_EMBEDDINGS), base_url, EMBED, *texts], capture_output=True, text=True,
                          timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    vectors: list[list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return vectors


def test_javascript_sdk_gets_true_vectors_from_a_float_only_upstream(
        client: openai.OpenAI, sim: Sim, stack: Stack, base_url: str) -> None:
    node = _node_with_openai()
    texts = ["first text", "second text"]
    expected = _reference_vectors(client, texts)
    sim.configure(embedding_format="float")
    # The hazard itself: straight against an upstream that answers floats, the SDK garbles them.
    direct = _js_vectors(node, f"{stack.simulator_url}/openai/v1", texts)
    assert len(direct[0]) != len(expected[0]) or direct[0] != pytest.approx(expected[0], rel=1e-6, abs=1e-7)
    # Through the gateway it gets the true vectors.
    vectors = _js_vectors(node, base_url, texts)
    assert len(vectors) == 2
    for got, want in zip(vectors, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-7)
