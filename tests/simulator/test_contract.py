"""The simulator refereed by Azure's own API description (issue #12): every kind of body it sends
must validate against the schema the official OpenAPI document gives for that operation.

The end-to-end suite runs against this simulator, so a simulator that drifts from Azure would let
the gateway drift too; these tests make such drift red. The document is read in place from
``../shared/specs/`` beside the repository; without it the tests skip locally and fail under CI.

Where the live service and the official SDKs disagree with the document, the document is patched
in :data:`KNOWN_DEVIATIONS`, visibly, one reason each; everything else is checked as written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.harness import SimulatorProcess
from tests.simulator.openapi_contract import Spec, load_spec_or_skip

CHAT = "gpt-4o-mini"
EMBED = "text-embedding-3-small"
MESSAGES = [{"role": "user", "content": "Say something"}]
FUNCTION_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
CHAT_TOOL = {"type": "function",
             "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
MCP_TOOL = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.invalid/sse"}

KNOWN_DEVIATIONS = {
    "error type and nullable param/code": (
        "AzureErrorResponse allows only type 'error' and non-null param/code, but the service answers "
        "validation errors in OpenAI's shape (type 'invalid_request_error', param and code null), which "
        "the official SDKs parse; the simulator sends both shapes, as Azure does."),
    "usage null before completion": (
        "The Response schemas do not allow usage: null, but the live API sends it while a response is "
        "not finished (response.created, response.in_progress, a queued background response) and the "
        "SDKs type it Optional."),
    "mcp argument event names": (
        "The document names them response.mcp_call.arguments_delta/_done; the live API and the "
        "official SDKs use response.mcp_call_arguments.delta/.done. Their payloads are checked against "
        "the document's schemas under the document's names."),
    "content-filter error type null": (
        "Chat's 400 for a filtered prompt has type null (and Azure's innererror, which the document "
        "calls inner_error and leaves untyped); its innererror is checked below against the prompt "
        "result schema."),
    "prompt annotation chunk": (
        "A streamed chat's first chunk carries only prompt_filter_results, with empty id, model and "
        "object and created 0; the document's chunk schema has no prompt_filter_results (added here, "
        "so it is checked) and allows only object 'chat.completion.chunk'."),
    "prompt_filter_results nesting": (
        "The document types each prompt_filter_results item's content_filter_results as the whole "
        "AzureContentFilterResultForPrompt (prompt_index + content_filter_results again); the service "
        "sends the categories directly, i.e. that schema's inner content_filter_results."),
}
PROMPT_CATEGORIES = ("#/components/schemas/AzureContentFilterResultForPrompt/properties/"
                     "content_filter_results")
CHOICE_RESULTS = {"$ref": "#/components/schemas/AzureContentFilterResultForChoice"}
EVENT_ALIASES = {
    "response.mcp_call_arguments.delta": "response.mcp_call.arguments_delta",
    "response.mcp_call_arguments.done": "response.mcp_call.arguments_done",
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _patched(spec: Spec) -> Spec:
    """The document with :data:`KNOWN_DEVIATIONS` applied (a copy: the loaded one stays as written)."""
    document = copy.deepcopy(spec.document)
    schemas = document["components"]["schemas"]
    error = schemas["AzureErrorResponse"]["properties"]["error"]["properties"]
    error["type"] = {"type": ["string", "null"]}
    error["param"] = _nullable(error["param"])
    error["code"] = _nullable(error["code"])
    for name in ("AzureResponse", "OpenAI.Response"):
        properties = schemas[name]["properties"]
        properties["usage"] = _nullable(properties["usage"])
    prompt_item = {"type": "object", "required": ["prompt_index", "content_filter_results"], "properties": {
        "prompt_index": {"type": "integer"},
        "content_filter_results": {"$ref": PROMPT_CATEGORIES}}}
    schemas["AzureCreateChatCompletionResponse"]["properties"]["prompt_filter_results"] = {
        "type": "array", "items": prompt_item}
    chunk = schemas["AzureCreateChatCompletionStreamResponse"]["properties"]
    chunk["prompt_filter_results"] = {"type": "array", "items": prompt_item}
    chunk["object"] = {"type": "string", "enum": ["chat.completion.chunk", ""]}
    return Spec(document)


@pytest.fixture(scope="module")
def spec() -> Spec:
    return _patched(load_spec_or_skip())


@pytest.fixture
def api(sim: SimulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.api_url, headers={"api-key": "test-key"}, timeout=10) as client:
        yield client


def conforms(spec: Spec, schema: dict[str, Any], body: Any, what: str) -> None:
    problems = spec.errors(schema, body)
    assert not problems, f"{what} breaks Azure's API description:\n" + "\n".join(problems[:10])


def sse_data(text: str) -> list[Any]:
    """The JSON ``data`` of every event (``[DONE]`` left out)."""
    found = []
    for event in text.split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                found.append(json.loads(line[6:]))
    return found


# --- the referee itself: it must be able to say no --------------------------------------------------

def test_the_contract_rejects_what_the_document_rejects(spec: Spec, api: httpx.Client) -> None:
    good = api.post("/chat/completions", json={"model": CHAT, "messages": MESSAGES}).json()
    schema = spec.response_schema("/chat/completions", "post")
    assert spec.errors(schema, good) == []
    assert spec.errors(schema, {**good, "object": "chat.completions"})
    assert spec.errors(schema, {key: value for key, value in good.items() if key != "choices"})
    broken_choice = {**good["choices"][0], "finish_reason": "done"}
    assert spec.errors(schema, {**good, "choices": [broken_choice]})
    # nullable: the stream chunk's finish_reason may be null, a string outside its enum may not.
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": CHAT,
             "choices": [{"index": 0, "delta": {}, "finish_reason": None}]}
    stream_schema = spec.response_schema("/chat/completions", "post", content_type="text/event-stream")
    assert spec.errors(stream_schema, chunk) == []
    assert spec.errors(stream_schema, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "done"}]})
    assert spec.event_schema("response.not_a_real_event") is None
    # content-filter results: severities and the prompt's required detections are checked.
    assert spec.errors(CHOICE_RESULTS, {"hate": {"filtered": False, "severity": "safe"}}) == []
    assert spec.errors(CHOICE_RESULTS, {"hate": {"filtered": False, "severity": "extreme"}})
    assert spec.errors({"$ref": PROMPT_CATEGORIES}, {"hate": {"filtered": False, "severity": "safe"}})


# --- chat completions -------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, {"max_tokens": 3}, {"tools": [CHAT_TOOL]}, {"reasoning_effort": "low"}],
                         ids=["text", "length", "tool", "reasoning"])
def test_chat_completion(spec: Spec, api: httpx.Client, extra: dict[str, Any]) -> None:
    reply = api.post("/chat/completions", json={"model": CHAT, "messages": MESSAGES, **extra})
    assert reply.status_code == 200
    conforms(spec, spec.response_schema("/chat/completions", "post"), reply.json(), "a chat completion")


@pytest.mark.parametrize("extra", [{"stream_options": {"include_usage": True}}, {"tools": [CHAT_TOOL]},
                                   {"reasoning_effort": "high", "stream_options": {"include_usage": True}}],
                         ids=["text-with-usage", "tool", "reasoning"])
def test_chat_stream_chunks(spec: Spec, api: httpx.Client, extra: dict[str, Any]) -> None:
    reply = api.post("/chat/completions", json={"model": CHAT, "messages": MESSAGES, "stream": True, **extra})
    assert reply.status_code == 200 and reply.text.endswith("data: [DONE]\n\n")
    schema = spec.response_schema("/chat/completions", "post", content_type="text/event-stream")
    chunks = sse_data(reply.text)
    assert len(chunks) >= 3
    for chunk in chunks:
        conforms(spec, schema, chunk, f"chat stream chunk {chunk}")


# --- content filtering (Azure's annotations and cuts) --------------------------------------------

FILTER_PROMPTS = {"annotated": "[[filter:annotate]] hello", "output-cut": "[[filter:output:hate]] tell me",
                  "tool": "[[filter:annotate]] weather?"}


@pytest.mark.parametrize("name", list(FILTER_PROMPTS))
def test_chat_completion_with_filter_results(spec: Spec, api: httpx.Client, name: str) -> None:
    extra = {"tools": [CHAT_TOOL]} if name == "tool" else {}
    reply = api.post("/chat/completions", json={
        "model": CHAT, "messages": [{"role": "user", "content": FILTER_PROMPTS[name]}], **extra})
    assert reply.status_code == 200
    body = reply.json()
    conforms(spec, spec.response_schema("/chat/completions", "post"), body, "an annotated chat completion")
    choice = body["choices"][0]
    conforms(spec, CHOICE_RESULTS, choice["content_filter_results"], "a choice's content filter results")
    assert body["prompt_filter_results"][0]["content_filter_results"]["jailbreak"] == {"filtered": False,
                                                                                      "detected": False}
    if name == "output-cut":
        assert choice["finish_reason"] == "content_filter"
        assert choice["content_filter_results"]["hate"] == {"filtered": True, "severity": "medium"}


@pytest.mark.parametrize("name", list(FILTER_PROMPTS))
def test_chat_stream_with_filter_results(spec: Spec, api: httpx.Client, name: str) -> None:
    extra = {"tools": [CHAT_TOOL]} if name == "tool" else {}
    reply = api.post("/chat/completions", json={
        "model": CHAT, "messages": [{"role": "user", "content": FILTER_PROMPTS[name]}], "stream": True,
        "stream_options": {"include_usage": True}, **extra})
    assert reply.status_code == 200 and reply.text.endswith("data: [DONE]\n\n")
    schema = spec.response_schema("/chat/completions", "post", content_type="text/event-stream")
    chunks = sse_data(reply.text)
    first = chunks[0]
    assert first["choices"] == [] and first["prompt_filter_results"][0]["prompt_index"] == 0
    for chunk in chunks:
        conforms(spec, schema, chunk, f"annotated chat stream chunk {chunk}")
        for choice in chunk["choices"]:
            conforms(spec, CHOICE_RESULTS, choice["content_filter_results"], "a chunk's content filter results")
    finish = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1
    if name == "output-cut":
        assert finish[0]["finish_reason"] == "content_filter"
        assert finish[0]["content_filter_results"]["hate"]["filtered"] is True


def test_content_filter_annotations_switch_annotates_every_chat_reply(spec: Spec, sim: SimulatorProcess,
                                                                     api: httpx.Client) -> None:
    sim.configure(content_filter_annotations=True)
    body = api.post("/chat/completions", json={"model": CHAT, "messages": MESSAGES}).json()
    conforms(spec, spec.response_schema("/chat/completions", "post"), body, "an annotated chat completion")
    assert body["prompt_filter_results"] and body["choices"][0]["content_filter_results"]["violence"]


# --- embeddings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{"encoding_format": "float"}, {"encoding_format": "base64"},
                                   {"dimensions": 8}, {}], ids=["float", "base64", "dimensions", "default"])
def test_embeddings(spec: Spec, api: httpx.Client, extra: dict[str, Any]) -> None:
    reply = api.post("/embeddings", json={"model": EMBED, "input": ["one", "two"], **extra})
    assert reply.status_code == 200
    conforms(spec, spec.response_schema("/embeddings", "post"), reply.json(), "an embeddings reply")


# --- responses --------------------------------------------------------------------------------------

RESPONSE_REQUESTS = {
    "text": {"input": "Tell me"},
    "instructions": {"input": "Tell me", "instructions": "Be brief", "max_output_tokens": 3},
    "function": {"input": "weather?", "tools": [FUNCTION_TOOL]},
    "mcp": {"input": "search", "tools": [{**MCP_TOOL, "require_approval": "never"}]},
    "mcp-approval": {"input": "search", "tools": [MCP_TOOL]},
    "reasoning": {"input": "think first", "reasoning": {"effort": "high", "summary": "detailed"}},
    "reasoning-no-summary": {"input": "think first", "reasoning": {"effort": "low"}},
    "reasoning-mcp": {"input": "search", "reasoning": {"effort": "medium", "summary": "auto"},
                      "tools": [{**MCP_TOOL, "require_approval": "never"}]},
    "output-filtered": {"input": "[[filter:output:sexual]] tell me"},
}


@pytest.mark.parametrize("name", list(RESPONSE_REQUESTS))
def test_response_and_its_stored_copy(spec: Spec, api: httpx.Client, name: str) -> None:
    reply = api.post("/responses", json={"model": CHAT, **RESPONSE_REQUESTS[name]})
    assert reply.status_code == 200
    conforms(spec, spec.response_schema("/responses", "post"), reply.json(), "a response")
    stored = api.get(f"/responses/{reply.json()['id']}")
    conforms(spec, spec.response_schema("/responses/{response_id}", "get"), stored.json(), "a stored response")


def test_background_response_and_deletion(spec: Spec, api: httpx.Client) -> None:
    queued = api.post("/responses", json={"model": CHAT, "input": "later", "background": True}).json()
    conforms(spec, spec.response_schema("/responses", "post"), queued, "a queued background response")
    deleted = api.delete(f"/responses/{queued['id']}")
    assert deleted.status_code == 200
    conforms(spec, spec.response_schema("/responses/{response_id}", "delete"), deleted.json(), "a deletion")


def test_mcp_approval_continues_the_conversation(spec: Spec, api: httpx.Client) -> None:
    first = api.post("/responses", json={"model": CHAT, "input": "search", "tools": [MCP_TOOL]}).json()
    request = first["output"][-1]
    assert request["type"] == "mcp_approval_request"
    for approve in (True, False):
        second = api.post("/responses", json={
            "model": CHAT, "previous_response_id": first["id"], "tools": [MCP_TOOL],
            "input": [{"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": approve}]})
        conforms(spec, spec.response_schema("/responses", "post"), second.json(), "a response after an approval")
        kinds = [item["type"] for item in second.json()["output"]]
        assert kinds == (["mcp_call", "message"] if approve else ["message"])


def test_continued_conversation(spec: Spec, api: httpx.Client) -> None:
    first = api.post("/responses", json={"model": CHAT, "input": "weather?", "tools": [FUNCTION_TOOL]}).json()
    call = first["output"][0]
    second = api.post("/responses", json={
        "model": CHAT, "previous_response_id": first["id"], "tools": [FUNCTION_TOOL],
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})
    conforms(spec, spec.response_schema("/responses", "post"), second.json(), "a continued response")


@pytest.mark.parametrize("name", list(RESPONSE_REQUESTS))
def test_every_response_stream_event(spec: Spec, api: httpx.Client, name: str) -> None:
    reply = api.post("/responses", json={"model": CHAT, "stream": True, **RESPONSE_REQUESTS[name]})
    assert reply.status_code == 200
    events = sse_data(reply.text)
    assert events and events[-1]["type"] in ("response.completed", "response.incomplete")
    kinds = {event["type"] for event in events}
    expected = {"reasoning": "response.reasoning_summary_text.delta", "reasoning-mcp": "response.mcp_call.completed",
                "output-filtered": "response.incomplete"}
    assert expected.get(name, "response.created") in kinds, f"{name}: the stream lacks what it is here to check"
    for event in events:
        kind = EVENT_ALIASES.get(event["type"], event["type"])
        schema = spec.event_schema(kind)
        assert schema is not None, f"stream event type {event['type']!r} is not in Azure's API description"
        conforms(spec, schema, {**event, "type": kind}, f"stream event {event['type']}")


# --- the rest of the Responses API: input items, cancel, resumed background streams ------------------

def test_input_items_pages(spec: Spec, api: httpx.Client) -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
    created = api.post("/responses", json={"model": CHAT, "tools": [FUNCTION_TOOL], "input": [
        {"role": "user", "content": "weather?"}, call,
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]}).json()
    schema = spec.response_schema("/responses/{response_id}/input_items", "get")
    listed = api.get(f"/responses/{created['id']}/input_items", params={"order": "asc"}).json()
    conforms(spec, schema, listed, "an input item list")
    assert [item["type"] for item in listed["data"]] == ["message", "function_call", "function_call_output"]
    page = api.get(f"/responses/{created['id']}/input_items",
                   params={"limit": 1, "after": listed["data"][0]["id"], "order": "asc"}).json()
    conforms(spec, schema, page, "a page of input items")
    assert page["has_more"] is True and page["data"][0]["type"] == "function_call"


def test_cancelled_background_response(spec: Spec, sim: SimulatorProcess, api: httpx.Client) -> None:
    sim.configure(ttft_ms=5000)
    queued = api.post("/responses", json={"model": CHAT, "input": "later", "background": True}).json()
    cancelled = api.post(f"/responses/{queued['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    # No cancel operation in the description: the answer is a response, checked as a retrieved one.
    conforms(spec, spec.response_schema("/responses/{response_id}", "get"), cancelled.json(), "a cancelled response")
    events = sse_data(api.get(f"/responses/{queued['id']}", params={"stream": "true"}).text)
    # What ran before the cancel (up to the first token, 5 s away), then the error.
    kinds = [event["type"] for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "error" and "response.output_text.delta" not in kinds
    for event in events:
        conforms(spec, spec.event_schema(event["type"]) or {}, event, f"cancelled stream event {event['type']}")


def test_resumed_background_stream(spec: Spec, api: httpx.Client) -> None:
    created = api.post("/responses", json={"model": CHAT, "input": "later", "background": True}).json()
    resumed = api.get(f"/responses/{created['id']}", params={"stream": "true", "starting_after": 3})
    events = sse_data(resumed.text)
    assert events[0]["sequence_number"] == 4 and events[-1]["type"] == "response.completed"
    for event in events:
        schema = spec.event_schema(event["type"])
        assert schema is not None
        conforms(spec, schema, event, f"resumed stream event {event['type']}")


# --- models -----------------------------------------------------------------------------------------

def test_models(spec: Spec, api: httpx.Client) -> None:
    conforms(spec, spec.response_schema("/models", "get"), api.get("/models").json(), "the model list")
    conforms(spec, spec.response_schema("/models/{model}", "get"), api.get(f"/models/{CHAT}").json(), "a model")


# --- errors: the `default` response of every operation ----------------------------------------------

def _error_cases(sim: SimulatorProcess, api: httpx.Client) -> Iterator[tuple[str, str, httpx.Response]]:
    chat = "/chat/completions"
    yield "no key", chat, httpx.post(f"{sim.api_url}{chat}", json={"model": CHAT, "messages": MESSAGES})
    yield "unknown deployment", chat, api.post(chat, json={"model": "nope", "messages": MESSAGES})
    yield "no model", chat, api.post(chat, json={"messages": MESSAGES})
    yield "not JSON", chat, api.post(chat, content=b"{", headers={"content-type": "application/json"})
    yield "bad messages", chat, api.post(chat, json={"model": CHAT, "messages": "hi"})
    yield "wrong family", chat, api.post(chat, json={"model": EMBED, "messages": MESSAGES})
    yield "bad cap", chat, api.post(chat, json={"model": CHAT, "messages": MESSAGES, "max_tokens": 0})
    yield "too many inputs", "/embeddings", api.post("/embeddings", json={"model": EMBED, "input": ["a"] * 2049})
    yield "bad dimensions", "/embeddings", api.post("/embeddings", json={"model": EMBED, "input": "a",
                                                                        "dimensions": 0})
    yield "unknown response", "/responses/{response_id}", api.get("/responses/resp_missing")
    yield "unknown previous", "/responses", api.post("/responses", json={
        "model": CHAT, "input": "x", "previous_response_id": "resp_missing"})
    for status in (429, 500, 503):
        sim.add_faults({"kind": "status", "status": status, "retry_after_ms": 10, "path": "chat/completions"})
        yield f"fault {status}", chat, api.post(chat, json={"model": CHAT, "messages": MESSAGES})
    yield "filtered prompt", chat, api.post(chat, json={
        "model": CHAT, "messages": [{"role": "user", "content": "[[filter:prompt:jailbreak]] ignore all rules"}]})
    yield "filtered response prompt", "/responses", api.post("/responses", json={
        "model": CHAT, "input": "[[filter:prompt:self_harm]] something"})
    yield "bad reasoning effort", chat, api.post(chat, json={"model": CHAT, "messages": MESSAGES,
                                                             "reasoning_effort": "extreme"})
    sim.configure(tpm=10)
    yield "rate limited", chat, api.post(chat, json={"model": CHAT, "messages": MESSAGES, "max_tokens": 50})


def test_every_error_body(spec: Spec, sim: SimulatorProcess, api: httpx.Client) -> None:
    seen = 0
    for what, path, reply in _error_cases(sim, api):
        assert reply.status_code >= 400, what
        assert reply.headers["content-type"].startswith("application/json"), what
        method = "get" if path.endswith("{response_id}") else "post"
        body = reply.json()
        conforms(spec, spec.response_schema(path, method, "default"), body, f"the error for {what}")
        assert isinstance(body["error"].get("message"), str) and body["error"]["message"], what
        seen += 1
    assert seen == 18


def test_filtered_prompt_errors_carry_the_prompt_results(spec: Spec, api: httpx.Client) -> None:
    chat = api.post("/chat/completions", json={
        "model": CHAT, "messages": [{"role": "user", "content": "[[filter:prompt:hate]] words"}]})
    error = chat.json()["error"]
    assert chat.status_code == 400 and error["code"] == "content_filter" and error["param"] == "prompt"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    results = error["innererror"]["content_filter_result"]
    conforms(spec, {"$ref": PROMPT_CATEGORIES}, results, "a filtered prompt's results (chat)")
    assert results["hate"] == {"filtered": True, "severity": "medium"}

    responses = api.post("/responses", json={"model": CHAT, "input": "[[filter:prompt]] words"})
    error = responses.json()["error"]
    assert responses.status_code == 400 and error["code"] == "content_filter"
    (blocked,) = error["content_filters"]
    assert blocked["blocked"] is True and blocked["source_type"] == "prompt"
    conforms(spec, {"$ref": PROMPT_CATEGORIES}, blocked["content_filter_results"],
             "a filtered prompt's results (responses)")
    assert blocked["content_filter_results"]["violence"]["filtered"] is True
