"""Scripted faults and the request log, as gateway tests will use them."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import openai
import pytest

from simulator.harness import SimulatorProcess

USER = [{"role": "user", "content": "fault please"}]


def _wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_status_faults_are_consumed_in_order(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    queued = sim.add_faults(
        {"path": "chat/completions", "kind": "status", "status": 503, "count": 2},
        {"path": "*", "kind": "status", "status": 500},
    )
    assert queued["queued"] == 2 and queued["pending"][0]["count"] == 2
    # The first pending fault that matches wins: for embeddings that is the "*" one.
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=8)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert [r["status"] for r in sim.stats()["recent"]] == [500, 503, 503, 200]


def test_fault_matching_and_statuses(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults(
        {"path": "chat/completions", "kind": "status", "status": 503, "count": 2},
        {"path": "/openai/v1/embeddings", "kind": "status", "status": 408},
    )
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert caught.value.status_code == 503 and caught.value.code == "ServiceUnavailable"
    with pytest.raises(openai.APIStatusError) as timeout_error:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert timeout_error.value.status_code == 408
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    stats = sim.stats()
    assert stats["counts"] == {"chat/completions": 3, "embeddings": 1}
    assert [r["fault"] for r in stats["recent"]] == ["status", "status", "status", None]
    assert httpx.get(f"{sim.base_url}/_sim/faults").json() == {"pending": []}


def test_model_scoped_fault_and_custom_body(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults(
        {
            "kind": "status",
            "status": 429,
            "model": "gpt-4.1-mini",
            "retry_after_ms": 1500,
            "body": {"error": {"code": "Custom", "message": "custom body"}},
        }
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)  # other model: untouched
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4.1-mini", messages=USER)
    assert caught.value.response.headers["retry-after-ms"] == "1500"
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "Custom"


def test_reset_fault_breaks_connection(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults({"kind": "reset"})
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    record = sim.stats()["recent"][-1]
    assert record["fault"] == "reset" and record["status"] is None and record["aborted"]
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)  # server still healthy


def test_hang_until_client_gives_up(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults({"kind": "hang", "seconds": 30})
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert time.monotonic() - start < 2
    _wait_for(lambda: sim.stats()["disconnects"] == 1)
    record = sim.stats()["recent"][-1]
    assert record["cancelled"] and record["status"] is None


def test_hang_then_close(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults({"kind": "hang", "seconds": 0.3})
    start = time.monotonic()
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert time.monotonic() - start >= 0.3


def test_drop_mid_stream_is_a_protocol_error(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults({"kind": "drop_mid_stream", "after_chunks": 3})
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True):
            received.append(chunk)
    assert len(received) == 3
    record = sim.stats()["recent"][-1]
    assert record["chunks_sent"] == 3 and record["aborted"] and record["status"] == 200


def test_drop_mid_stream_raw_http(sim: SimulatorProcess) -> None:
    sim.add_faults({"kind": "drop_mid_stream", "after_chunks": 1})
    body = {"model": "gpt-4o-mini", "input": "x", "stream": True}
    url = f"{sim.api_url}/responses"
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("POST", url, json=body, headers={"api-key": "k"}) as r:
        r.read()
    # Non-streaming replies are cut in the middle of the JSON body.
    sim.add_faults({"kind": "drop_mid_stream"})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{sim.api_url}/responses", json={**body, "stream": False}, headers={"api-key": "k"})


def test_slow_first_byte(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.add_faults({"kind": "slow_first_byte", "ms": 400, "path": "embeddings"})
    start = time.monotonic()
    client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=8)
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=8)
    assert time.monotonic() - start < 0.3


def test_client_disconnect_stops_generation(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(token_delay_ms=100)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    stream.close()
    _wait_for(lambda: sim.stats()["disconnects"] == 1)
    record = sim.stats()["recent"][-1]
    assert record["cancelled"] and record["chunks_sent"] < 10
    sent = record["chunks_sent"]
    time.sleep(0.3)
    assert sim.stats()["recent"][-1]["chunks_sent"] == sent  # nothing more was generated


def test_stats_record_shape(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    before = time.monotonic()
    client.with_options(default_headers={"x-ms-client-request-id": "abc"}).chat.completions.create(
        model="gpt-4o-mini", messages=USER
    )
    client.embeddings.create(model="text-embedding-3-small", input="x")
    stats = sim.stats()
    assert stats["total"] == 2 and stats["in_flight"] == 0 and stats["disconnects"] == 0
    chat = sim.stats(route="chat/completions")["recent"]
    assert len(chat) == 1
    record = chat[0]
    assert record["method"] == "POST" and record["path"] == "/openai/v1/chat/completions"
    assert record["model"] == "gpt-4o-mini" and record["stream"] is False and record["status"] == 200
    assert record["auth"] == "bearer" and len(record["auth_fingerprint"]) == 12
    assert record["headers"]["x-ms-client-request-id"] == "abc"
    assert "authorization" not in record["headers"]
    assert record["body_size"] > 0 and record["duration_ms"] >= 0
    assert before <= record["received_at"] <= record["finished_at"] <= time.monotonic()
    assert sim.stats(limit=1)["recent"][0]["route"] == "embeddings"


def test_reset_clears_everything(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="x")
    sim.add_faults({"kind": "status", "status": 500})
    sim.configure(ttft_ms=5)
    sim.reset()
    assert sim.stats()["total"] == 0
    assert httpx.get(f"{sim.base_url}/_sim/faults").json()["pending"] == []
    assert httpx.get(f"{sim.base_url}/_sim/config").json()["ttft_ms"] == 0
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_invalid_fault_is_rejected(sim: SimulatorProcess) -> None:
    response = httpx.post(f"{sim.base_url}/_sim/faults", json=[{"kind": "explode"}])
    assert response.status_code == 400 and "explode" in response.json()["error"]["message"]


def test_disconnect_while_waiting_for_first_token(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=3000)
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model="gpt-4o-mini", messages=USER)
    _wait_for(lambda: sim.stats()["disconnects"] == 1)
    assert sim.stats()["recent"][-1]["cancelled"]
