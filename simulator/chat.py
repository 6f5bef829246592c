"""`POST /chat/completions`: deterministic replies, tool calls and paced SSE streams.

Decision for the reply, looking at the last message:

* role `tool` -> text starting "Tool result received: <first words of the tool output>";
* role `user` with function `tools` and `tool_choice` not "none" -> one `tool_calls` entry calling
  the named function (`tool_choice` object) or the first one, arguments ``{}``;
* otherwise -> "Simulated reply to: <first words of the last user message> ..." padded with
  filler to `reply_tokens` words, cut to `max_completion_tokens`/`max_tokens` (finish "length").

Azure-specific behaviour: a content-filter marker in the last user message (content_filter.py)
refuses the prompt or cuts the reply, and makes the reply carry the filter annotations;
`reasoning_effort` adds hidden reasoning tokens (reasoning.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from . import content_filter
from .errors import invalid_request
from .ids import hex_id
from .pipeline import Call, JsonOutcome, Outcome, StreamOutcome
from .reasoning import chat_reasoning
from .text import deltas, join_words, reply_words
from .tokens import content_texts, estimate_content, estimate_text

FINGERPRINT = "fp_simulator"
DONE_EVENT = b"data: [DONE]\n\n"
USAGE_JSON = (
    b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)
MESSAGE_JSON = b'{"role":"assistant","content":%s,"refusal":null,"annotations":[]%s}'
COMPLETION_JSON = (
    b'{"id":"%s","object":"chat.completion","created":%d,"model":%s,"system_fingerprint":"'
    + FINGERPRINT.encode()
    + b'","choices":[{"index":0,"message":%s,"logprobs":null,"finish_reason":"%s"}],"usage":%s}'
)


@dataclass(frozen=True, slots=True)
class Annotations:
    """Content-filter results a reply carries (None: not annotated); `flagged` cut the reply."""

    flagged: str | None = None


@dataclass(slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str


def output_cap(body: dict[str, Any], *names: str) -> int | None:
    """The first present output-token limit among `names`, validated."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid_request(f"'{name}' must be an integer >= 1", param=name, code="integer_below_min_value")
        return value
    return None


def text_of(content: object) -> str:
    """All text of a `content` value as one string (plain strings pass through untouched)."""
    return content if isinstance(content, str) else " ".join(content_texts(content))


def _forced_function(tool_choice: object) -> str | None:
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def _choose_tool(body: dict[str, Any], last_role: object) -> ToolCall | None:
    tools = body.get("tools")
    choice = body.get("tool_choice", "auto")
    if last_role != "user" or not isinstance(tools, list) or not tools or choice == "none":
        return None
    names = [
        str(t["function"]["name"])
        for t in tools
        if isinstance(t, dict)
        and t.get("type") == "function"
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
    ]
    if not names:
        return None
    name = _forced_function(choice) or names[0]
    return ToolCall(hex_id("call_", 96), name, "{}")


def _prompt_tokens(messages: list[Any]) -> int:
    total = 0
    for message in messages:
        total += estimate_content(message.get("content"))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                arguments = call["function"].get("arguments")
                if isinstance(arguments, str):
                    total += estimate_text(arguments)
    return total


async def create(call: Call) -> Outcome:
    body = call.body
    config = call.sim.config
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise invalid_request("'messages' must be a non-empty array of message objects", param="messages")
    cap = output_cap(body, "max_completion_tokens", "max_tokens")
    reasoning = chat_reasoning(body)
    reasoning_tokens = reasoning.tokens if reasoning is not None else 0
    prompt_tokens = _prompt_tokens(messages)
    user_text = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            user_text = text_of(message.get("content"))
            break
    trigger = content_filter.find_trigger(user_text)
    if trigger is not None and trigger.stage == "prompt":
        raise content_filter.chat_prompt_refused(trigger.category)
    call.admit(prompt_tokens + (cap if cap is not None else config.reply_tokens + reasoning_tokens))

    last = messages[-1]
    tool = _choose_tool(body, last.get("role"))
    words: tuple[str, ...] = ()
    finish = "stop"
    annotations = Annotations() if trigger is not None or config.content_filter_annotations else None
    if tool is not None:
        completion_tokens = estimate_text(tool.name) + estimate_text(tool.arguments)
        finish = "tool_calls"
    else:
        if last.get("role") == "tool":
            words = reply_words("tool", text_of(last.get("content")), config.seed, config.reply_tokens)
        else:
            words = reply_words("user", user_text, config.seed, config.reply_tokens)
        room = None if cap is None else max(0, cap - reasoning_tokens)
        if room is not None and room < len(words):
            words = words[:room]
            finish = "length"
        if trigger is not None and trigger.stage == "output":
            words = words[: content_filter.WORDS_BEFORE_CUT]
            finish = "content_filter"
            annotations = Annotations(trigger.category)
        completion_tokens = len(words)
    completion_tokens += reasoning_tokens

    total_tokens = prompt_tokens + completion_tokens
    usage = (b"null" if config.omit_usage
             else USAGE_JSON % (prompt_tokens, completion_tokens, total_tokens, reasoning_tokens))
    ident = hex_id("chatcmpl-", 116)
    created = int(time.time())
    model = call.model or ""
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True and not config.omit_usage
        return _stream(ident, created, model, words, tool, finish, usage if include_usage else None, call,
                       annotations, reasoning_tokens)

    if tool is not None:
        calls = [{"id": tool.call_id, "type": "function", "function": {"name": tool.name, "arguments": tool.arguments}}]
        message = MESSAGE_JSON % (b"null", b',"tool_calls":' + json.dumps(calls).encode())
    else:
        message = MESSAGE_JSON % (json.dumps(join_words(words)).encode(), b"")
    # Formatted rather than json.dumps'd: this is the benchmarked hot path, and the envelope is fixed.
    raw = COMPLETION_JSON % (ident.encode(), created, json.dumps(model).encode(), message, finish.encode(), usage)
    delay_ms = config.ttft_ms + config.token_delay_ms * max(0, completion_tokens - 1)
    if annotations is None:
        return JsonOutcome(raw=raw, delay_s=delay_ms / 1000)
    payload = json.loads(raw)  # the rare annotated reply: adding fields beats a second template
    payload["choices"][0]["content_filter_results"] = content_filter.choice_results(annotations.flagged)
    payload["prompt_filter_results"] = content_filter.prompt_filter_results()
    return JsonOutcome(payload, delay_s=delay_ms / 1000)


def _stream(
    ident: str,
    created: int,
    model: str,
    words: tuple[str, ...],
    tool: ToolCall | None,
    finish: str,
    usage: bytes | None,
    call: Call,
    annotations: Annotations | None = None,
    reasoning_tokens: int = 0,
) -> StreamOutcome:
    """Chunks: [prompt annotations,] role, one per word (or tool-call header + arguments), finish,
    usage?, [DONE]. Annotated streams add the choice's filter results to every chunk, as Azure does."""
    config = call.sim.config
    ttft = config.ttft_ms / 1000
    gap = config.token_delay_ms / 1000
    envelope = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
    head = b"data: " + json.dumps({**envelope, "system_fingerprint": FINGERPRINT})[:-1].encode()
    head += b',"choices":[{"index":0,"delta":'
    tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    events: list[bytes] = []
    delays: list[float] = []
    finish_results = b""
    if annotations is not None:
        # Azure's first chunk: the prompt's results alone, with empty id, model and object.
        first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                 "prompt_filter_results": content_filter.prompt_filter_results()}
        events.append(b"data: " + json.dumps(first).encode() + b"\n\n")
        delays.append(0.0)
        safe = json.dumps(content_filter.choice_results()).encode()
        tail = b',"logprobs":null,"finish_reason":null,"content_filter_results":' + safe + b"}]}\n\n"
        flagged = content_filter.choice_results(annotations.flagged) if annotations.flagged else {}
        finish_results = b',"content_filter_results":' + json.dumps(flagged).encode()

    # The first visible token waits for the model's hidden reasoning too.
    events.append(head + b'{"role":"assistant","content":"","refusal":null}' + tail)
    delays.append(ttft + gap * reasoning_tokens)
    if tool is not None:
        header = {"index": 0, "id": tool.call_id, "type": "function", "function": {"name": tool.name, "arguments": ""}}
        events.append(head + json.dumps({"tool_calls": [header]}).encode() + tail)
        events.append(
            head + json.dumps({"tool_calls": [{"index": 0, "function": {"arguments": tool.arguments}}]}).encode() + tail
        )
        delays += [0.0, gap]
    else:
        for i, piece in enumerate(deltas(words)):
            events.append(head + b'{"content":' + json.dumps(piece).encode() + b"}" + tail)
            delays.append(gap if i else 0.0)
    events.append(head + b'{},"logprobs":null,"finish_reason":"' + finish.encode() + b'"' + finish_results
                  + b"}]}\n\n")
    delays.append(0.0)
    if usage is not None:
        events.append(
            b"data: " + json.dumps({**envelope, "choices": []})[:-1].encode() + b',"usage":' + usage + b"}\n\n"
        )
        delays.append(0.0)
    events.append(DONE_EVENT)
    delays.append(0.0)
    return StreamOutcome(events, delays)
