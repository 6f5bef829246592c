"""Cheap, documented token estimates (no tokenizer download, no per-request allocation spikes).

The estimate used everywhere in the simulator is::

    tokens(text) = ceil(len(text) / 4)        # characters, not bytes; "" -> 0

applied to each text piece separately and summed. Pieces are: chat message `content` strings or
the `text` of each content part (an image part counts a flat ``IMAGE_TOKENS``), Responses
`instructions` and every text found in `input` items (message content, `function_call_output`
output, function-call arguments), and each embeddings input string. A token-array embeddings
input counts one token per element. No per-message overhead is added and tool definitions are not
counted, so a test can predict `prompt_tokens` exactly from its own strings.

Generated output is counted in words: every streamed content chunk carries exactly one word, and
`completion_tokens` / `output_tokens` equals the number of words produced.
"""

from __future__ import annotations

from collections.abc import Iterable

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 85


def estimate_text(text: str) -> int:
    """ceil(len(text) / 4): the one rule all prompt estimates are built on."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def content_texts(content: object) -> Iterable[str]:
    """Yield the text pieces of an OpenAI `content` value (string, or list of typed parts)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                yield part
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    yield text


def estimate_content(content: object) -> int:
    """Tokens of one `content` value, images counted at a flat rate."""
    total = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                total += IMAGE_TOKENS
    for text in content_texts(content):
        total += estimate_text(text)
    return total
