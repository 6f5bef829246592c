"""Responses API through the official SDK: text, instructions, conversations, tools, MCP, streams."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from simulator.harness import SimulatorProcess

FUNCTION_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
MCP_TOOL = {
    "type": "mcp",
    "server_label": "docs",
    "server_url": "https://mcp.example.invalid/sse",
    "require_approval": "never",
}


def test_plain_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="Tell me a joke please")
    assert response.id.startswith("resp_")
    assert response.object == "response" and response.status == "completed"
    assert response.model == "gpt-4o-mini"
    assert response.output_text.startswith("Simulated reply to: Tell me a joke please")
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert response.usage.input_tokens == 6  # ceil(21 / 4)
    assert response.usage.output_tokens == 20
    assert response.usage.total_tokens == 26


def test_instructions_marker_and_echo(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "What is up?"}]}],
        instructions="You are a terse pirate who never explains",
    )
    assert response.output_text.startswith("[instructions: You are a terse pirate] Simulated reply to: What is up?")
    assert response.instructions == "You are a terse pirate who never explains"


def test_previous_response_continues_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="first question")
    second = client.responses.create(model="gpt-4o-mini", input="second question", previous_response_id=first.id)
    third = client.responses.create(model="gpt-4o-mini", input="third", previous_response_id=second.id)
    assert "(turn 2)" in second.output_text and "(turn 3)" in third.output_text
    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None
    # The earlier conversation is billed as input again, as the real service does.
    assert second.usage.input_tokens == first.usage.total_tokens + 4


def test_unknown_previous_response_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o-mini", input="x", previous_response_id="resp_missing")
    assert caught.value.code == "previous_response_not_found"


def test_store_false_is_not_kept(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_retrieve_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="keep me")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    deleted = client.responses.with_raw_response.delete(created.id)
    assert deleted.http_request.method == "DELETE"
    assert json.loads(deleted.text) == {"id": created.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_function_tool_call_and_result(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="weather in Paris?", tools=[FUNCTION_TOOL])
    call = first.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather" and call.arguments == "{}" and call.call_id.startswith("call_")
    second = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy, 12 degrees"}],
        tools=[FUNCTION_TOOL],
    )
    assert "Tool result received: rainy, 12 degrees" in second.output_text


def test_mcp_tool_never_requires_approval(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="search the docs", tools=[MCP_TOOL])
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"]
    listing, call = response.output[0], response.output[1]
    assert listing.type == "mcp_list_tools" and listing.server_label == "docs" and len(listing.tools) == 1
    assert call.type == "mcp_call" and call.server_label == "docs"
    assert call.name == listing.tools[0].name
    assert json.loads(call.arguments) == {"query": "search the docs"}
    assert call.output
    assert response.output_text.startswith("Simulated reply to: search the docs")


def test_mcp_approval_flow(client: openai.OpenAI) -> None:
    tool = {**MCP_TOOL, "require_approval": "always"}
    first = client.responses.create(model="gpt-4o-mini", input="search", tools=[tool])
    assert [i.type for i in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    second = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    assert [i.type for i in second.output] == ["mcp_call", "message"]


def test_stream_event_sequence(sim: SimulatorProcess) -> None:
    body = {"model": "gpt-4o-mini", "input": "stream this", "stream": True, "max_output_tokens": 4}
    with httpx.stream("POST", f"{sim.api_url}/responses", json=body, headers={"api-key": "k"}) as response:
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    assert "[DONE]" not in raw
    types = []
    for number, frame in enumerate(frames):
        event_line, data_line = frame.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        assert data["sequence_number"] == number
        types.append(data["type"])
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",  # max_output_tokens cut the reply
    ]


def test_stream_with_sdk(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4o-mini", input="stream me", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = events[-1]
    assert completed.type == "response.completed"
    assert deltas == completed.response.output_text
    # Streamed responses are stored too.
    assert client.responses.retrieve(completed.response.id).output_text == deltas


@pytest.mark.parametrize("tools", [[], [FUNCTION_TOOL], [MCP_TOOL]], ids=["text", "function", "mcp"])
def test_stream_helper_accumulates(client: openai.OpenAI, tools: list[dict[str, object]]) -> None:
    kwargs = {"tools": tools} if tools else {}
    with client.responses.stream(model="gpt-4o-mini", input="helper", instructions="be brief", **kwargs) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    plain = client.responses.create(model="gpt-4o-mini", input="helper", instructions="be brief", **kwargs)
    assert [i.type for i in final.output] == [i.type for i in plain.output]
    assert final.output_text == plain.output_text
