"""Chat completions through the official SDK: plain, streamed, capped, tools, pacing, headers."""

from __future__ import annotations

import time

import httpx
import openai

from simulator.harness import SimulatorProcess

USER = [{"role": "user", "content": "Hello there, how are you today?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def test_plain_reply_is_deterministic_with_usage(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    text = first.choices[0].message.content
    assert text is not None
    assert text.startswith("Simulated reply to: Hello there, how are you today?")
    assert text == second.choices[0].message.content
    assert first.object == "chat.completion"
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.choices[0].finish_reason == "stop"
    assert first.usage is not None
    assert first.usage.completion_tokens == len(text.split()) == 20
    assert first.usage.prompt_tokens == 8  # ceil(31 chars / 4)
    assert first.usage.total_tokens == 28


def test_max_tokens_caps_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "Simulated reply to: Hello there,"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    capped = client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_completion_tokens=3)
    assert capped.choices[0].message.content == "Simulated reply to:"


def test_stream_chunks_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 20  # one word per chunk
    full = client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices[0].message.content
    assert "".join(content) == full
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20


def test_stream_wire_format(sim: SimulatorProcess) -> None:
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True, "max_tokens": 2}
    with httpx.stream("POST", f"{sim.api_url}/chat/completions", json=body, headers={"api-key": "k"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = raw.split("\n\n")
    assert frames[-1] == "" and frames[-2] == "data: [DONE]"
    assert all(f.startswith("data: ") for f in frames[:-1])
    assert '"finish_reason":"length"' in frames[-3]


def test_tool_call_then_tool_result(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather" and call.function.arguments == "{}"

    follow_up = [
        *USER,
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and 22 degrees"},
    ]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=follow_up, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert (second.choices[0].message.content or "").startswith("Tool result received: sunny and 22 degrees")

    none = client.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=[WEATHER_TOOL], tool_choice="none")
    assert none.choices[0].message.tool_calls is None


def test_streamed_tool_call_accumulates(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="gpt-4o-mini", messages=USER, tools=[WEATHER_TOOL]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert final.choices[0].finish_reason == "tool_calls"


def test_stream_pacing(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=300, token_delay_ms=50)
    start = time.monotonic()
    arrivals = []
    for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 20
    assert 0.28 <= arrivals[0] < 0.8
    assert arrivals[-1] >= 0.3 + 19 * 0.05 - 0.05
    assert arrivals[-1] - arrivals[0] > 0.7


def test_non_streaming_waits_for_generation(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=200, token_delay_ms=10)
    start = time.monotonic()
    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert time.monotonic() - start >= 0.2 + 19 * 0.01 - 0.02


def test_azure_headers_on_every_response(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    for name in ("x-request-id", "apim-request-id", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"):
        assert raw.headers.get(name), name
    assert "x-ratelimit-limit-tokens" not in raw.headers
    sim.configure(tpm=1000, rpm=60)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
    assert raw.headers["x-ratelimit-limit-requests"] == "60"
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(1000 - (8 + 20))
    assert raw.headers["x-ratelimit-remaining-requests"] == "9"  # 10 per 10 s window, one used


def test_plain_openai_base_url(sim: SimulatorProcess) -> None:
    with openai.OpenAI(base_url=f"{sim.base_url}/v1", api_key="k", max_retries=0) as plain:
        reply = plain.chat.completions.create(model="gpt-4.1-mini", messages=USER)
    assert reply.model == "gpt-4.1-mini"
