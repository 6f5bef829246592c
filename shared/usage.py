"""Token usage as reported by the upstream, from a complete body or from a stream's events.

Only read when something needs it (telemetry, per-caller limits), so the common path never parses
bodies it relays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


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
