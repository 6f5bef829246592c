"""Token usage as reported by the upstream, from a complete body or from a stream's events.

Only read when something needs it (telemetry, per-caller limits), so the common path never parses
bodies it relays. :class:`StreamMeter` also estimates what a stream relayed, for when the upstream
reports nothing (a stream cut short, an upstream that omits usage).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def from_mapping(usage: Any) -> Usage | None:
    """Chat/embeddings (prompt/completion_tokens) and Responses (input/output_tokens) shapes."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


def from_body(body: bytes) -> Usage | None:
    if b'"usage"' not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return from_mapping(data.get("usage")) if isinstance(data, dict) else None


def from_event(chunk: bytes) -> Usage | None:
    """Usage from SSE events: a chat usage chunk, or a Responses ``response.completed`` event."""
    if b'"usage"' not in chunk:
        return None
    found: Usage | None = None
    for line in chunk.splitlines():
        if not line.startswith(b"data:") or b'"usage"' not in line:
            continue
        try:
            data = json.loads(line[5:])
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        usage = data.get("usage")
        if usage is None and isinstance(data.get("response"), dict):
            usage = data["response"].get("usage")
        found = from_mapping(usage) or found
    return found


# Generated text in a stream, as JSON string values: chat chunks carry it in ``delta.content``,
# ``delta.refusal``, ``delta.reasoning_content`` and tool calls' ``function.arguments``; Responses
# events in the ``delta`` of their ``*.delta`` events (their ``*.done`` events and snapshots repeat
# the text, and are not counted). An escaped quote inside a value is skipped by ``\\.``.
_CHAT_TEXT = re.compile(rb'"(?:content|refusal|reasoning_content|arguments)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_RESPONSES_TEXT = re.compile(rb'"delta"\s*:\s*"((?:[^"\\]|\\.)*)"')
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n")
# ``"usage":null``, which an upstream asked for usage adds to every chunk (OpenAI does), with the
# comma that joins it to its neighbour; inside a JSON string the quotes would be escaped.
_NULL_USAGE = re.compile(rb'\s*,\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,\s*')


def text_tokens(text: bytes, pattern: re.Pattern[bytes]) -> int:
    """Estimated tokens of the generated text in ``text``: one per 4 characters, at least one per piece."""
    total = 0
    for match in pattern.finditer(text):
        size = len(match.group(1))
        if size:
            total += max(1, (size + 2) // 4)
    return total


def _events(chunk: bytes) -> list[bytes]:
    """The SSE events in ``chunk``, each with its own terminating blank line (the last may lack one)."""
    events: list[bytes] = []
    start = 0
    for end in _EVENT_END.finditer(chunk):
        events.append(chunk[start:end.end()])
        start = end.end()
    if start < len(chunk):
        events.append(chunk[start:])
    return events


def _is_usage_chunk(event: bytes) -> bool:
    """A chat usage chunk: ``choices`` empty and ``usage`` an object (Azure's filter-results chunk,
    also with empty ``choices``, has no usage and stays)."""
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return False
            return isinstance(data, dict) and data.get("choices") == [] and isinstance(data.get("usage"), dict)
    return False


class StreamMeter:
    """Watches a relayed event stream: the usage it reports, and an estimate of the output it relayed.

    With ``strip_usage`` (the gateway asked the upstream for usage the caller did not ask for), the
    usage chunk is dropped and ``"usage":null`` taken out of the other chunks, so the caller gets the
    stream it would have received without the gateway's request.
    """

    __slots__ = ("output_tokens", "pattern", "strip_usage", "usage")

    def __init__(self, api: Literal["chat", "responses"], *, strip_usage: bool = False) -> None:
        self.usage: Usage | None = None
        self.output_tokens = 0
        self.pattern = _CHAT_TEXT if api == "chat" else _RESPONSES_TEXT
        self.strip_usage = strip_usage

    def feed(self, chunk: bytes) -> bytes:
        """Note what ``chunk`` reports and relays; return it as the caller must receive it."""
        self.output_tokens += text_tokens(chunk, self.pattern)
        if b'"usage"' not in chunk:
            return chunk
        self.usage = from_event(chunk) or self.usage
        if not self.strip_usage:
            return chunk
        kept = [_NULL_USAGE.sub(b"", event) for event in _events(chunk) if not _is_usage_chunk(event)]
        return b"".join(kept)
