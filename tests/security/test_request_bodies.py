"""Request bodies and ids through the running host: the upstream gets exactly what was judged, and
what cannot be judged is refused with the right status before any upstream call."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import pytest

from tests.security.conftest import Sim, post, start_stack


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[httpx.Client, Sim]]:
    with start_stack() as (stack, sim), httpx.Client(base_url=f"{stack.host_url}/api/v1", timeout=30) as http:
        yield http, sim



# --- alias rewriting keeps every other byte, numbers included ---------------------------------------

NUMBERS = b'"temperature":1.0,"top_p":-0,"seed":123456789012345678901234567890,"x_big":1e400,"x_e":1E+2'


def test_alias_rewrite_keeps_numbers_byte_exact(http: httpx.Client, sim: Sim) -> None:
    raw = b'{"model":"chat","messages":[{"role":"user","content":"hi"}],' + NUMBERS + b"}"
    post(http, "/chat/completions", raw)  # the upstream may refuse the odd values; it must see them as sent
    (record,) = sim.requests("chat/completions")
    expected = raw.replace(b'"chat"', b'"gpt-4o-mini"')
    assert record["model"] == "gpt-4o-mini"
    assert record["body_size"] == len(expected)
    assert record["body_keys"] == sorted(json.loads(raw))


def test_alias_rewrite_in_embeddings_keeps_the_rest(http: httpx.Client, sim: Sim) -> None:
    raw = b'{"input":["a","b"],"dimensions":256,"model":"embed","encoding_format":"float"}'
    assert post(http, "/embeddings", raw).status_code == 200
    (record,) = sim.requests("embeddings")
    assert record["model"] == "text-embedding-3-small"
    assert record["body_size"] == len(raw.replace(b'"embed"', b'"text-embedding-3-small"'))
    assert record["body_keys"] == ["dimensions", "encoding_format", "input", "model"]


@pytest.mark.parametrize("raw", [
    b'{"model":"gpt-4o-mini","messages":[],"temperature":NaN}',
    b'{"model":"gpt-4o-mini","messages":[],"temperature":Infinity}',
    b'{"model":"gpt-4o-mini","messages":[],"temperature":-Infinity}',
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud800"}]}',
    b'{"model":"gpt-4o-mini","messages":[],"x":"\xff"}',
    b'\xef\xbb\xbf{"model":"gpt-4o-mini","messages":[]}',
    b'{"model":"gpt-4o-mini","messages":[]} {"model":"gpt-5-secret"}',
])
def test_json_other_parsers_read_differently_is_refused(http: httpx.Client, sim: Sim, raw: bytes) -> None:
    response = post(http, "/chat/completions", raw)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert sim.stats()["total"] == 0


# --- embeddings: the documented 2048-input limit holds before any upstream call ---------------------

@pytest.mark.parametrize("inputs", [["x"] * 2049, [[1, 2]] * 2049])
def test_more_than_2048_embedding_inputs_is_400_without_upstream_call(http: httpx.Client, sim: Sim,
                                                                        inputs: list[object]) -> None:
    raw = json.dumps({"model": "text-embedding-3-small", "input": inputs}).encode()
    response = post(http, "/embeddings", raw)
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == ("input",
                                                                                    "array_above_max_length")
    assert sim.stats()["total"] == 0


def test_2048_embedding_inputs_are_sent(http: httpx.Client, sim: Sim) -> None:
    raw = json.dumps({"model": "text-embedding-3-small", "input": ["x"] * 2048}).encode()
    assert post(http, "/embeddings", raw).status_code == 200
    (record,) = sim.requests("embeddings")
    assert record["body_size"] == len(raw)


def test_a_long_token_array_is_one_input(http: httpx.Client, sim: Sim) -> None:
    raw = json.dumps({"model": "text-embedding-3-small", "input": [1] * 3000}).encode()
    post(http, "/embeddings", raw)
    assert sim.stats()["total"] == 1


# --- response ids: only plain ids reach an upstream URL ---------------------------------------------

def raw_request(http: httpx.Client, method: str, target: str, *, parse: bool = True) -> tuple[int, Any]:
    """Send the request line exactly as given (clients resolve dot segments before sending)."""
    url = urlsplit(str(http.base_url))
    assert url.hostname and url.port
    client = h11.Connection(h11.CLIENT)
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(client.send(h11.Request(method=method, target=target.encode(),
                                             headers=[("host", url.netloc), ("connection", "close")])))
        conn.sendall(client.send(h11.EndOfMessage()))
        status, body = 0, b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(conn.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, json.loads(body) if parse else body


@pytest.mark.parametrize("response_id", [".", "..", "%2e", "%2E%2E", ".%2e", "a.b", "resp_1%00", "resp%20x",
                                         "%C3%A9t%C3%A9", "resp_1%3B", "resp_1.json"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_response_id_that_is_not_plain_is_404_without_upstream_call(http: httpx.Client, sim: Sim, method: str,
                                                                    response_id: str) -> None:
    status, body = raw_request(http, method, f"/api/v1/responses/{response_id}")
    # The gateway's own 404 (an upstream 404 would be relayed with the upstream's body); the simulator
    # only records requests on its API routes, so its count alone would miss a resolved "..".
    assert (status, body["error"]["param"], body["error"]["code"]) == (404, "response_id", "not_found"), body
    assert sim.stats()["total"] == 0


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_response_id_with_an_encoded_slash_never_reaches_the_upstream(http: httpx.Client, sim: Sim,
                                                                      method: str) -> None:
    # The host may not route it at all (its own 404, not JSON) or hand the gateway "../..": either way, 404.
    status = raw_request(http, method, "/api/v1/responses/..%2F..%2Fmodels", parse=False)[0]
    assert status == 404
    assert sim.stats()["total"] == 0


def test_plain_response_id_reaches_the_upstream(http: httpx.Client, sim: Sim) -> None:
    created = post(http, "/responses", b'{"model":"gpt-4o-mini","input":"hi"}')
    assert created.status_code == 200
    response_id = created.json()["id"]
    assert http.get(f"/responses/{response_id}").status_code == 200
    assert [r["path"] for r in sim.requests("responses/{id}")] == [f"/openai/v1/responses/{response_id}"]
