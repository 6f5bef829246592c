"""`/responses`: create (plain, streamed, in the background), retrieve, cancel, delete, input items,
with stored conversations (background runs and input items: background.py).

What a reply reveals, so gateway tests can check what reached the upstream:

* `instructions` given -> the text starts with "[instructions: <first 5 words>]";
* `previous_response_id` given -> it must be stored (else 404 `previous_response_not_found`) and
  the text then contains "(turn N)", N = 1 + the number of responses in that chain;
  `usage.input_tokens` also includes the whole earlier conversation, like the real service;
* last input item a `function_call_output` -> "Tool result received: <first words>";
* `mcp` tools -> `mcp_list_tools` (one fake tool) then, with `require_approval: "never"`, an
  `mcp_call` and the message; otherwise an `mcp_approval_request` that a later
  `mcp_approval_response` input item answers. The MCP server itself is never contacted;
* function tools (and no mcp tools) with `tool_choice` not "none" after a user turn -> a single
  `function_call` item with arguments ``{}``.

Azure-specific behaviour: a content-filter marker in the last user turn (content_filter.py) refuses
the prompt (400 `content_filter`) or cuts the message (`status: "incomplete"`, reason
`content_filter`); `reasoning: {effort, summary}` puts a `reasoning` item first (reasoning.py).

Streaming emits the documented event sequence, each event with a growing `sequence_number`,
as ``event: <type>\\ndata: <json>\\n\\n`` and no `[DONE]` terminator.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from . import background, content_filter
from .chat import output_cap, text_of
from .errors import ApiError, invalid_request
from .ids import hex_id
from .pipeline import Call, JsonOutcome, Outcome, StreamOutcome, dumps
from .reasoning import Reasoning, responses_reasoning, summary_parts
from .store import Background, StoredResponse
from .text import compose_reply, deltas, first_words, join_words, reply_lead, tool_result_lead
from .tokens import estimate_content, estimate_text

MCP_TOOL_NAME = "sim_lookup"
MCP_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
    "additionalProperties": False,
}


def not_found(response_id: str) -> ApiError:
    return invalid_request(f"Response with id '{response_id}' not found.", status=404)


@dataclass(slots=True)
class Turn:
    """What the last input item asks of the model."""

    kind: str  # "user", "tool_output" or "mcp_approval"
    text: str = ""
    approve: bool = False


@dataclass(slots=True)
class Plan:
    """Output items (complete) plus the word list of the final message, if any."""

    items: list[dict[str, Any]] = field(default_factory=list)
    words: list[str] | None = None
    output_tokens: int = 0
    incomplete: str | None = None  # why the message was cut: "max_output_tokens" or "content_filter"
    summary: list[list[str]] = field(default_factory=list)  # reasoning summary parts, as words


def _items(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list) and all(isinstance(i, dict) for i in value):
        return value
    raise invalid_request("'input' must be a string or an array of input items", param="input")


def _input_tokens(items: list[dict[str, Any]]) -> int:
    total = 0
    for item in items:
        total += estimate_content(item.get("content"))
        for key in ("output", "arguments"):
            value = item.get(key)
            if isinstance(value, str):
                total += estimate_text(value)
    return total


def _last_turn(items: list[dict[str, Any]]) -> Turn:
    if items:
        last = items[-1]
        kind = last.get("type")
        if kind == "function_call_output":
            output = last.get("output")
            return Turn("tool_output", output if isinstance(output, str) else text_of(output))
        if kind == "mcp_approval_response":
            return Turn("mcp_approval", approve=last.get("approve") is True)
    for item in reversed(items):
        if item.get("role") == "user":
            return Turn("user", text_of(item.get("content")))
    return Turn("user", "")


def _mcp_tool_name(tool: dict[str, Any]) -> str:
    allowed = tool.get("allowed_tools")
    if isinstance(allowed, dict):
        allowed = allowed.get("tool_names")
    if isinstance(allowed, list) and allowed and isinstance(allowed[0], str):
        return allowed[0]
    return MCP_TOOL_NAME


def _mcp_items(tool: dict[str, Any], turn: Turn) -> tuple[list[dict[str, Any]], bool]:
    """MCP output items for this turn, and whether a final message follows them."""
    label = str(tool.get("server_label", "mcp"))
    name = _mcp_tool_name(tool)
    arguments = json.dumps({"query": " ".join(first_words(turn.text, 8))})
    if turn.kind == "mcp_approval":
        if not turn.approve:
            return [], True
        return [_mcp_call(label, name, arguments)], True
    listing = {
        "id": hex_id("mcpl_"),
        "type": "mcp_list_tools",
        "server_label": label,
        "tools": [
            {
                "name": name,
                "description": "Simulated MCP tool; the simulator never contacts the server.",
                "input_schema": MCP_TOOL_SCHEMA,
                "annotations": None,
            }
        ],
        "error": None,
    }
    if tool.get("require_approval") == "never":
        return [listing, _mcp_call(label, name, arguments)], True
    request = {
        "id": hex_id("mcpr_"),
        "type": "mcp_approval_request",
        "server_label": label,
        "name": name,
        "arguments": arguments,
    }
    return [listing, request], False


def _mcp_call(label: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": hex_id("mcp_"),
        "type": "mcp_call",
        "server_label": label,
        "name": name,
        "arguments": arguments,
        "output": f"Simulated result of {name} from {label}",
        "error": None,
        "status": "completed",
        "approval_request_id": None,
    }


def _function_name(tools: list[dict[str, Any]], choice: object) -> str | None:
    names = [str(t["name"]) for t in tools if t.get("type") == "function" and isinstance(t.get("name"), str)]
    if not names or choice == "none":
        return None
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return str(choice["name"])
    return names[0]


def _lead(instructions: str | None, turn_number: int | None, turn: Turn) -> list[str]:
    lead: list[str] = []
    if instructions is not None:
        words = first_words(instructions, 5)
        lead += ["[instructions:", *words[:-1], words[-1] + "]"] if words else ["[instructions:]"]
    if turn_number is not None:
        lead += ["(turn", f"{turn_number})"]
    if turn.kind == "tool_output":
        lead += tool_result_lead(turn.text)
    elif turn.kind == "mcp_approval" and not turn.approve:
        lead += ["MCP", "tool", "call", "was", "not", "approved."]
    else:
        lead += reply_lead(turn.text)
    return lead


def _reasoning_item(reasoning: Reasoning, turn: Turn, plan: Plan) -> dict[str, Any]:
    plan.summary = summary_parts(reasoning, turn.text)
    plan.output_tokens += reasoning.tokens
    summary = [{"type": "summary_text", "text": " ".join(words)} for words in plan.summary]
    return {"id": hex_id("rs_"), "type": "reasoning", "summary": summary}


def _plan(call: Call, tools: list[dict[str, Any]], turn: Turn, lead: list[str], cap: int | None,
          reasoning: Reasoning | None, filtered: bool) -> Plan:
    plan = Plan()
    config = call.sim.config
    if reasoning is not None:
        plan.items.append(_reasoning_item(reasoning, turn, plan))
    mcp = next((t for t in tools if t.get("type") == "mcp"), None)
    wants_message = True
    if mcp is not None and turn.kind in ("user", "mcp_approval"):
        plan.items, wants_message = _mcp_items(mcp, turn)
    elif mcp is None and turn.kind == "user":
        name = _function_name(tools, call.body.get("tool_choice", "auto"))
        if name is not None:
            arguments = "{}"
            plan.items.append(
                {
                    "id": hex_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": hex_id("call_"),
                    "name": name,
                    "arguments": arguments,
                }
            )
            wants_message = False
    for item in plan.items:
        if item["type"] in ("function_call", "mcp_call", "mcp_approval_request"):
            plan.output_tokens += estimate_text(item["name"]) + estimate_text(item["arguments"])
    if wants_message:
        words = compose_reply(lead, turn.text, config.seed, config.reply_tokens)
        if cap is not None and cap < plan.output_tokens + len(words):
            words = words[: max(0, cap - plan.output_tokens)]
            plan.incomplete = "max_output_tokens"
        if filtered:
            words = words[: content_filter.WORDS_BEFORE_CUT]
            plan.incomplete = "content_filter"
        plan.words = words
        plan.output_tokens += len(words)
    return plan


def _message(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = (
        [] if status == "in_progress" else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    )
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


async def create(call: Call) -> Outcome:
    body = call.body
    sim = call.sim
    items = _items(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_request("'instructions' must be a string", param="instructions")
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise invalid_request("'tools' must be an array of tool objects", param="tools")
    previous_id = body.get("previous_response_id")
    previous: StoredResponse | None = None
    if previous_id is not None:
        previous = sim.store.get(previous_id) if isinstance(previous_id, str) else None
        if previous is None:
            raise invalid_request(
                f"Previous response with id '{previous_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
                status=404,
            )
    cap = output_cap(body, "max_output_tokens")
    reasoning = responses_reasoning(body)
    input_tokens = _input_tokens(items) + (estimate_text(instructions) if instructions else 0)
    if previous is not None:
        input_tokens += previous.context_tokens
    turn = _last_turn(items)
    trigger = content_filter.find_trigger(turn.text) if turn.kind == "user" else None
    if trigger is not None and trigger.stage == "prompt":
        raise content_filter.responses_prompt_refused(trigger.category, len(turn.text))
    thinking = reasoning.tokens if reasoning is not None else 0
    call.admit(input_tokens + (cap if cap is not None else sim.config.reply_tokens + thinking))

    turn_number = previous.turn + 1 if previous is not None else None
    filtered = trigger is not None and trigger.stage == "output"
    plan = _plan(call, tools, turn, _lead(instructions, turn_number, turn), cap, reasoning, filtered)
    message_id = hex_id("msg_")
    output = list(plan.items)
    if plan.words is not None:
        output.append(_message(message_id, join_words(plan.words), "incomplete" if plan.incomplete else "completed"))

    now = int(time.time())
    store = body.get("store", True) is not False
    response: dict[str, Any] = {
        "id": hex_id("resp_", 128),
        "object": "response",
        "created_at": now,
        "status": "incomplete" if plan.incomplete else "completed",
        "background": False,
        "completed_at": now,
        "error": None,
        "incomplete_details": {"reason": plan.incomplete} if plan.incomplete else None,
        "instructions": instructions,
        "max_output_tokens": cap,
        "metadata": body.get("metadata") or {},
        "model": call.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": previous_id,
        "reasoning": {"effort": reasoning.effort if reasoning else None,
                      "summary": reasoning.summary if reasoning else None},
        "store": store,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": None
        if sim.config.omit_usage
        else {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": plan.output_tokens,
            "output_tokens_details": {"reasoning_tokens": thinking},
            "total_tokens": input_tokens + plan.output_tokens,
        },
        "user": body.get("user"),
    }
    config = sim.config
    gap = config.token_delay_ms / 1000
    ttft = config.ttft_ms / 1000 + gap * thinking
    in_background = body.get("background") is True
    response["background"] = in_background
    stored: StoredResponse | None = None
    if store or in_background:  # a background response is kept while it runs, to be polled
        stored = StoredResponse(response, turn_number or 1, input_tokens + plan.output_tokens,
                                input_items=background.input_resources(items))
        sim.store.put(response["id"], stored)
    if in_background and stored is not None:
        # It runs on its own clock from now (background.py); the reply comes at once, still queued.
        streamed = _stream(response, plan, message_id, ttft, gap)
        stored.background = Background(streamed.events, list(accumulate(streamed.delays)), time.monotonic())
        if body.get("stream") is True:
            return streamed
        return JsonOutcome({**response, "status": "queued", "completed_at": None, "output": [], "usage": None})
    if body.get("stream") is True:
        return _stream(response, plan, message_id, ttft, gap)
    delay_ms = config.ttft_ms + config.token_delay_ms * max(0, plan.output_tokens - 1)
    return JsonOutcome(response, delay_s=delay_ms / 1000)


# Stream obfuscation: characters that pad each delta event so that its size does not give away the
# token's length (a side channel). OpenAI and Azure send it by default, and Azure's API description
# makes the field required on delta events.
_PAD = "Kp3vQ9zLw2XsT7bNmR4cYh8JdF6gA1eU"


def obfuscation(delta: str) -> str:
    """1 to 16 pad characters: delta plus pad is a multiple of 16 characters long."""
    return _PAD[: 16 - len(delta) % 16]


class _Events:
    """Builds `event:`/`data:` SSE frames with consecutive sequence numbers."""

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.delays: list[float] = []

    def add(self, kind: str, delay: float = 0.0, **data: Any) -> None:
        """Append one event; a `bytes` value is taken as already-encoded JSON (shared snapshots)."""
        head = b'event: %s\ndata: {"type":"%s","sequence_number":%d' % (kind.encode(), kind.encode(), len(self.events))
        fields = [b',"%s":%s' % (k.encode(), v if isinstance(v, bytes) else dumps(v)) for k, v in data.items()]
        self.events.append(head + b"".join(fields) + b"}\n\n")
        self.delays.append(delay)

    def add_text_delta(self, delay: float, item_id: str, output_index: int, delta: str) -> None:
        """The one event sent per token, formatted directly to keep streaming cheap."""
        self.events.append(
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d,'
            b'"item_id":"%s","output_index":%d,"content_index":0,"delta":%s,"logprobs":[],"obfuscation":"%s"}\n\n'
            % (len(self.events), item_id.encode(), output_index, json.dumps(delta).encode(),
               obfuscation(delta).encode())
        )
        self.delays.append(delay)


def _arguments(out: _Events, kind: str, item: dict[str, Any], index: int, delay: float, **extra: Any) -> None:
    """A tool call's arguments: one ``{kind}.delta`` with them whole, then ``{kind}.done``."""
    where = {"item_id": item["id"], "output_index": index}
    arguments = item["arguments"]
    out.add(f"{kind}.delta", delay, **where, delta=arguments, obfuscation=obfuscation(arguments))
    out.add(f"{kind}.done", **where, **extra, arguments=arguments)


def _stream(response: dict[str, Any], plan: Plan, message_id: str, ttft: float, gap: float) -> StreamOutcome:
    out = _Events()
    start = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    start["incomplete_details"] = None
    snapshot = dumps(start)
    out.add("response.created", response=snapshot)
    out.add("response.in_progress", response=snapshot)
    first = ttft  # the first generated piece waits for the time-to-first-token
    for index, item in enumerate(response["output"]):
        item_id = item["id"]
        kind = item["type"]
        if kind == "message":
            out.add("response.output_item.added", output_index=index, item=_message(item_id, "", "in_progress"))
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.add("response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=empty)
            for i, piece in enumerate(deltas(plan.words or [])):
                delay = first if i == 0 else gap
                first = 0.0
                out.add_text_delta(delay, item_id, index, piece)
            part = item["content"][0]
            text = part["text"]
            out.add(
                "response.output_text.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            out.add("response.content_part.done", item_id=item_id, output_index=index, content_index=0, part=part)
        elif kind == "reasoning":
            out.add("response.output_item.added", output_index=index, item={**item, "summary": []})
            for part_index, words in enumerate(plan.summary):
                where = {"item_id": item_id, "output_index": index, "summary_index": part_index}
                out.add("response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""})
                for i, piece in enumerate(deltas(words)):
                    out.add("response.reasoning_summary_text.delta", first if i == 0 else gap, **where,
                            delta=piece, obfuscation=obfuscation(piece))
                    first = 0.0
                out.add("response.reasoning_summary_text.done", **where, text=" ".join(words))
                out.add("response.reasoning_summary_part.done", **where, part=item["summary"][part_index])
        elif kind == "function_call":
            out.add(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            _arguments(out, "response.function_call_arguments", item, index, first, name=item["name"])
            first = 0.0
        elif kind == "mcp_list_tools":
            out.add("response.output_item.added", output_index=index, item={**item, "tools": []})
            out.add("response.mcp_list_tools.in_progress", item_id=item_id, output_index=index)
            out.add("response.mcp_list_tools.completed", item_id=item_id, output_index=index)
        elif kind == "mcp_call":
            added = {**item, "arguments": "", "output": None, "status": "in_progress"}
            out.add("response.output_item.added", output_index=index, item=added)
            out.add("response.mcp_call.in_progress", item_id=item_id, output_index=index)
            _arguments(out, "response.mcp_call_arguments", item, index, first)
            first = 0.0
            out.add("response.mcp_call.completed", item_id=item_id, output_index=index)
        else:
            out.add("response.output_item.added", output_index=index, item=item)
        out.add("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    out.add(final, response=response)
    return StreamOutcome(out.events, out.delays)


def _stored(call: Call) -> StoredResponse:
    call.record.query = call.request.url.query
    response_id = call.request.path_params["response_id"]
    stored = call.sim.store.get(response_id)
    if stored is None:
        raise not_found(response_id)
    return stored


async def retrieve(call: Call) -> Outcome:
    """A stored response as it is now; with `stream=true`, a background response's events (background.py)."""
    stored = _stored(call)
    query = call.request.query_params
    if query.get("stream") == "true":
        after = query.get("starting_after")
        if after is not None and not after.isdigit():
            raise invalid_request("Invalid 'starting_after': expected a non-negative integer.", param="starting_after")
        call.record.stream = True
        return background.resumed(stored, None if after is None else int(after),
                                  obfuscated=query.get("include_obfuscation") != "false")
    return JsonOutcome(background.current(stored))


async def cancel(call: Call) -> Outcome:
    return JsonOutcome(background.cancel(_stored(call)))


async def input_items(call: Call) -> Outcome:
    return JsonOutcome(background.page(_stored(call).input_items, dict(call.request.query_params)))


async def delete(call: Call) -> Outcome:
    response_id = call.request.path_params["response_id"]
    if not call.sim.store.delete(response_id):
        raise not_found(response_id)
    return JsonOutcome({"id": response_id, "object": "response.deleted", "deleted": True})
