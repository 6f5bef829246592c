"""`omit_usage` (an upstream that reports no token usage) and `background: true` responses."""

from __future__ import annotations

import httpx
import openai
import pytest

from simulator.config import SimulatorConfig
from simulator.harness import SimulatorProcess

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


def test_usage_is_reported_by_default(client: openai.OpenAI) -> None:
    chat = client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert chat.usage is not None and chat.usage.completion_tokens == 20
    chunks = list(client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None
    assert client.responses.create(model="gpt-4o-mini", input="hi").usage is not None


def test_omit_usage_drops_it_everywhere(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    assert sim.configure(omit_usage=True)["omit_usage"] is True
    assert client.chat.completions.create(**CHAT).usage is None  # type: ignore[call-overload]
    chunks = list(client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True}))
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"  # no usage chunk after it
    assert client.responses.create(model="gpt-4o-mini", input="hi").usage is None
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.usage is None


def test_omit_usage_accepts_cli_and_env_spellings(sim: SimulatorProcess) -> None:
    assert SimulatorConfig().patched({"omit_usage": "true"}).omit_usage is True
    assert SimulatorConfig().patched({"omit_usage": "off"}).omit_usage is False
    with pytest.raises(ValueError, match="true or false"):
        SimulatorConfig().patched({"omit_usage": 1})
    assert httpx.post(sim.base_url + "/_sim/config", json={"omit_usage": "maybe"}).status_code == 400


def test_background_response_is_queued_then_finished(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="hi", background=True)
    assert created.status == "queued" and created.usage is None and created.background is True
    stored = client.responses.retrieve(created.id)
    assert stored.status == "completed" and stored.usage is not None and stored.usage.output_tokens > 0
