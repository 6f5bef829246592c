"""Deterministic reply text: the same input (and seed) always yields the same words.

Tests assert on reply content ("did the upstream see my prompt / instructions / prior turn?") so
the reply starts with readable markers and then pads with filler words chosen from a hash of the
input, one word per token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

ECHO_WORDS = 8

FILLER: tuple[str, ...] = (
    "this", "is", "a", "deterministic", "simulated", "answer", "from", "the", "local",
    "azure", "openai", "simulator", "with", "stable", "filler", "words", "for", "tests",
    "and", "benchmarks", "that", "never", "call", "any", "real", "model", "so", "results",
    "stay", "repeatable", "across", "runs",
)  # fmt: skip


def first_words(text: str, n: int) -> list[str]:
    """The first `n` whitespace-separated words of `text`."""
    return text.split(None, n)[:n]


def compose_reply(lead: list[str], basis: str, seed: int, natural_tokens: int) -> list[str]:
    """Return the full reply as words: `lead`, then hash-chosen filler up to `natural_tokens`.

    The lead is never cut here (callers cap with max_tokens), so markers stay visible by default.
    """
    words = list(lead)
    missing = natural_tokens - len(words)
    if missing > 0:
        digest = hashlib.blake2b(f"{seed}\x00{basis}".encode(), digest_size=32).digest()
        n = len(FILLER)
        words.extend(FILLER[(digest[i & 31] + i) % n] for i in range(missing))
    return words


def reply_lead(user_text: str) -> list[str]:
    """Lead for a normal turn: 'Simulated reply to: <first words of the user message>'."""
    echoed = first_words(user_text, ECHO_WORDS) or ["(empty)"]
    return ["Simulated", "reply", "to:", *echoed]


def tool_result_lead(tool_output: str) -> list[str]:
    """Lead for the turn after a tool ran, so tests can see the result was passed back."""
    echoed = first_words(tool_output, ECHO_WORDS) or ["(empty)"]
    return ["Tool", "result", "received:", *echoed]


def join_words(words: Sequence[str]) -> str:
    """Words as one string; equal to concatenating the streamed deltas."""
    return " ".join(words)


def deltas(words: Sequence[str]) -> list[str]:
    """Per-token deltas whose concatenation is `join_words(words)`."""
    if not words:
        return []
    return [words[0], *(" " + w for w in words[1:])]


@lru_cache(maxsize=4096)
def reply_words(kind: str, text: str, seed: int, natural_tokens: int) -> tuple[str, ...]:
    """Cached full reply for a plain chat turn: `kind` "user" or "tool" picks the lead.

    Benchmarks repeat prompts, so caching makes the common case a dictionary lookup.
    """
    lead = tool_result_lead(text) if kind == "tool" else reply_lead(text)
    return tuple(compose_reply(lead, text, seed, natural_tokens))
