"""Clear errors for bad input, faithful upstream errors, and the retry policy under injected faults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from devhost.ports import free_port, free_ports
from devhost.stack import Stack
from tests.e2e.conftest import ALLOWED_ORIGIN, GATEWAY_ENV, MAX_REQUEST_BYTES, ROOT, Sim

CHAT = "/api/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_bad_json_is_400(http: httpx.Client, sim: Sim) -> None:
    assert_openai_error(http.post(CHAT, content=b"{not json", headers={"content-type": "application/json"}),
                        400, "invalid_json")
    assert sim.stats()["total"] == 0


def test_missing_field_is_400_and_wrong_type_is_422(http: httpx.Client) -> None:
    assert assert_openai_error(http.post(CHAT, json={"messages": MESSAGES}), 400)["param"] == "model"
    error = assert_openai_error(http.post(CHAT, json={"model": "gpt-4o-mini", "messages": "hi"}), 422)
    assert error["param"] == "messages"


def test_model_not_allowed_is_404_through_the_sdk(client: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4-secret", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert info.value.response.headers["x-request-id"]
    assert sim.stats()["total"] == 0


def test_oversized_body_is_413(http: httpx.Client, sim: Sim) -> None:
    big = "x" * (MAX_REQUEST_BYTES + 1)
    assert_openai_error(http.post(CHAT, json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]}),
                        413, "request_too_large")
    assert sim.stats()["total"] == 0


def test_wrong_method_is_405_with_allow(http: httpx.Client) -> None:
    response = http.get(CHAT)
    assert_openai_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    assert_openai_error(http.post("/api/v1/models"), 405)


def test_cors_preflight_allowed_and_refused(http: httpx.Client) -> None:
    ok = http.options(CHAT, headers={"origin": ALLOWED_ORIGIN, "access-control-request-method": "POST",
                                     "access-control-request-headers": "content-type,authorization"})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = http.options(CHAT, headers={"origin": "https://evil.example.test",
                                          "access-control-request-method": "POST"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    real = http.post(CHAT, json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers={"origin": ALLOWED_ORIGIN})
    assert real.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-request-id" in real.headers["access-control-expose-headers"]


def test_upstream_error_keeps_status_and_body(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="status", status=400,
              body={"error": {"message": "content filtered", "type": "invalid_request_error",
                              "param": "prompt", "code": "content_filter"}})
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.code == "content_filter" and "content filtered" in info.value.message
    assert sim.stats()["counts"]["chat/completions"] == 1  # a 400 is not retried


def test_transient_5xx_is_retried_and_succeeds(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="status", status=503, count=2)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content
    assert [r["status"] for r in sim.requests("chat/completions")] == [503, 503, 200]


def test_429_waits_retry_after_ms_then_succeeds(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="status", status=429, retry_after_ms=400, count=1)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first, second = sim.requests("chat/completions")
    waited = second["received_at"] - first["received_at"]
    assert 0.4 <= waited < 1.4  # honours retry-after-ms (0.4 s), not retry-after (1 s) nor backoff


def test_429_storm_reaches_the_caller_with_retry_headers(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="status", status=429, retry_after_ms=100, count=10)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    headers = info.value.response.headers
    assert headers["retry-after-ms"] == "100" and headers["retry-after"]
    assert headers["x-request-id"]
    assert sim.stats()["counts"]["chat/completions"] == 3  # RETRY_MAX_ATTEMPTS


def test_failure_mid_stream_is_an_error_not_a_truncation(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="drop_mid_stream", after_chunks=3)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert received, "the first chunks arrive before the failure"
    assert "connection lost" in info.value.message
    assert sim.stats()["counts"]["chat/completions"] == 1  # never retried once streaming began


def test_responses_stream_failure_surfaces_in_the_sdk(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="responses", kind="drop_mid_stream", after_chunks=4)
    with pytest.raises(openai.APIError):
        for _event in client.responses.create(model="gpt-4o-mini", input="hi", stream=True):
            pass


def test_client_disconnect_cancels_the_upstream_stream(base_url: str, sim: Sim) -> None:
    sim.configure(ttft_ms=0, token_delay_ms=100)
    with httpx.stream("POST", f"{base_url}/chat/completions", timeout=10,
                      json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "max_tokens": 200}) as r:
        lines = r.iter_lines()
        next(lines)
        next(lines)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not sim.requests("chat/completions")[-1]["cancelled"]:
        time.sleep(0.05)
    record = sim.requests("chat/completions")[-1]
    assert record["cancelled"], "upstream generation must stop when the caller goes away"
    assert record["chunks_sent"] < 60


@pytest.fixture(scope="module")
def short_deadline_stack(stack: Stack) -> Iterator[Stack]:
    """A second gateway on the same simulator with a 2 s budget per request."""
    env = {**GATEWAY_ENV, "OPENAI_BASE_URL": f"{stack.simulator_url}/openai/v1", "AZURE_OPENAI_API_KEY": "local",
           "REQUEST_TIMEOUT_SECONDS": "2", "AzureWebJobsStorage": stack.storage_connection_string or ""}
    with Stack(ROOT, free_port(), simulator=False, azurite=False, env=env) as running:
        yield running


def test_upstream_hang_is_504_within_the_deadline(short_deadline_stack: Stack, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="hang", seconds=30)
    started = time.monotonic()
    response = httpx.post(f"{short_deadline_stack.host_url}{CHAT}", json={"model": "gpt-4o-mini",
                                                                          "messages": MESSAGES}, timeout=30)
    elapsed = time.monotonic() - started
    assert_openai_error(response, 504, "upstream_timeout")
    assert elapsed < 3.5


def test_unreachable_upstream_is_502(stack: Stack) -> None:
    closed_port = free_port()
    env = {**GATEWAY_ENV, "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}/v1", "AZURE_OPENAI_API_KEY": "local",
           "RETRY_MAX_ATTEMPTS": "2", "AzureWebJobsStorage": stack.storage_connection_string or ""}
    host_port, = free_ports(1)
    with Stack(ROOT, host_port, simulator=False, azurite=False, env=env) as running:
        response = httpx.post(f"{running.host_url}{CHAT}", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                              timeout=30)
    error = assert_openai_error(response, 502, "upstream_unreachable")
    assert "could not reach" in error["message"]


def test_slow_first_byte_is_waited_for_not_retried(client: openai.OpenAI, sim: Sim) -> None:
    sim.fault(path="chat/completions", kind="slow_first_byte", ms=800)
    started = time.monotonic()
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    waited = time.monotonic() - started
    rest = list(stream)
    assert first.choices[0].delta.role == "assistant" and rest
    assert 0.8 <= waited < 3.0
    assert sim.stats()["counts"]["chat/completions"] == 1  # slow is not failed: no second attempt
