"""The gateway called exactly like Azure OpenAI, with the official openai SDK, through the local host."""

from __future__ import annotations

import base64
import struct
import time

import httpx
import openai
import pytest

from tests.e2e.conftest import ALLOWED_MCP, Sim


def test_chat_completion(client: openai.OpenAI, sim: Sim) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello gateway"}])
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Simulated reply to: hello gateway")
    assert completion.usage and completion.usage.total_tokens > 0
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    assert raw.headers["x-ratelimit-remaining-tokens"]
    [seen] = sim.requests("chat/completions")
    assert seen["model"] == "gpt-4o-mini" and seen["status"] == 200
    # our request id travels upstream so the two logs can be joined
    assert seen["headers"]["x-ms-client-request-id"] == raw.headers["x-request-id"]


def test_chat_stream_matches_the_plain_reply(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "stream me"}]
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_model_alias_reaches_the_deployment(client: openai.OpenAI, sim: Sim) -> None:
    completion = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert completion.model == "gpt-4o-mini"
    assert sim.requests("chat/completions")[-1]["model"] == "gpt-4o-mini"


def test_chat_function_tools(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=tools)
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"


def test_responses_with_instructions(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", instructions="Answer like a pirate please",
                                       input="where is the treasure")
    assert response.output_text.startswith("[instructions: Answer like a pirate please]")
    assert response.usage and response.usage.total_tokens > 0


def test_responses_multi_turn_and_retrieve_delete(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="first question")
    second = client.responses.create(model="gpt-4o-mini", input="follow up", previous_response_id=first.id)
    assert "(turn 2)" in second.output_text
    assert client.responses.retrieve(second.id).output_text == second.output_text
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_responses_stream_event_sequence(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4o-mini", input="stream a response", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text
    assert [e.sequence_number for e in events] == sorted(e.sequence_number for e in events)


def test_responses_function_tool(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    response = client.responses.create(model="gpt-4o-mini", input="look it up", tools=tools)
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "lookup"


def test_responses_allowed_mcp_tool(client: openai.OpenAI, sim: Sim) -> None:
    tools = [{"type": "mcp", "server_label": "docs", "server_url": ALLOWED_MCP + "/v1", "require_approval": "never"}]
    response = client.responses.create(model="gpt-4o-mini", input="search the docs", tools=tools)
    kinds = [item.type for item in response.output]
    assert "mcp_list_tools" in kinds and "mcp_call" in kinds
    assert sim.stats()["counts"].get("responses") == 1


def test_responses_disallowed_mcp_tool_never_reaches_upstream(client: openai.OpenAI, sim: Sim) -> None:
    tools = [{"type": "mcp", "server_label": "x", "server_url": "https://evil.example.test/mcp",
              "require_approval": "never"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o-mini", input="hi", tools=tools)
    assert info.value.code == "mcp_server_not_allowed"
    assert info.value.body["param"] == "tools[0].server_url"
    assert sim.stats()["total"] == 0


def test_embeddings_float_base64_and_dimensions(client: openai.OpenAI, base_url: str) -> None:
    # The SDK asks for base64 by default and decodes it; ask for floats explicitly too and compare.
    sdk = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64)
    plain = httpx.post(f"{base_url}/embeddings", json={"model": "embed", "input": ["alpha", "beta"],
                                                       "dimensions": 64, "encoding_format": "float"}).json()
    assert len(sdk.data) == 2 and len(sdk.data[0].embedding) == 64
    assert sdk.data[0].embedding == pytest.approx(plain["data"][0]["embedding"], abs=1e-6)
    assert sdk.data[0].embedding != sdk.data[1].embedding
    as_b64 = httpx.post(f"{base_url}/embeddings", json={"model": "embed", "input": "alpha", "dimensions": 64,
                                                        "encoding_format": "base64"}).json()
    raw = base64.b64decode(as_b64["data"][0]["embedding"])
    assert list(struct.unpack("<64f", raw)) == pytest.approx(plain["data"][0]["embedding"], abs=1e-6)


def test_models_list_is_the_allowlist(client: openai.OpenAI, sim: Sim) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["gpt-4o-mini", "text-embedding-3-small", "chat", "embed"]
    assert sim.stats()["total"] == 0


def test_health_is_anonymous_and_never_calls_upstream(http: httpx.Client, sim: Sim) -> None:
    response = http.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert sim.stats()["total"] == 0


def test_unknown_fields_are_forwarded_untouched(client: openai.OpenAI, sim: Sim) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                   extra_body={"x_future_option": {"nested": [1, 2]}})
    assert "x_future_option" in sim.requests("chat/completions")[-1]["body_keys"]


async def test_first_stream_event_arrives_while_upstream_is_still_generating(
        aclient: openai.AsyncOpenAI, sim: Sim) -> None:
    sim.configure(ttft_ms=100, token_delay_ms=60)
    started = time.monotonic()
    arrivals: list[float] = []
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "time me"}], stream=True, max_tokens=20)
    async for _chunk in stream:
        arrivals.append(time.monotonic() - started)
    # 20 tokens x 60 ms: upstream needs ~1.3 s in all; a buffering relay would deliver everything at the end.
    assert arrivals[-1] > 1.1
    assert arrivals[0] < 0.6
    assert arrivals[len(arrivals) // 2] < arrivals[-1] - 0.4


def test_request_log_has_ids_but_no_prompt_text(client: openai.OpenAI, stack) -> None:  # type: ignore[no-untyped-def]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "confidential-marker-7731"}])
    request_id = raw.headers["x-request-id"]
    deadline = time.monotonic() + 5
    log = ""
    while time.monotonic() < deadline and request_id not in log:
        time.sleep(0.1)
        log = stack.host_log.read_text()
    line = next(line for line in log.splitlines() if request_id in line)
    assert '"upstream_request_id"' in line and '"overhead_ms"' in line
    assert "confidential-marker-7731" not in log
