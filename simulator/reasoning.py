"""Reasoning models: hidden reasoning tokens, and on the Responses API a readable summary.

A request asks for reasoning with ``reasoning_effort`` (chat) or ``reasoning: {effort, summary}``
(Responses); any chat deployment of the simulator then behaves like an o-series model:

* the reasoning costs a fixed number of tokens per effort, reported in
  ``usage.completion_tokens_details.reasoning_tokens`` / ``usage.output_tokens_details.reasoning_tokens``
  and counted in the completion/output tokens (and against the output cap), as on the live service;
* the first visible token waits for the reasoning (``token_delay_ms`` per reasoning token);
* on Responses, a ``reasoning`` output item comes first; with ``summary`` set (auto, concise or
  detailed) it carries a summary that streams as ``response.reasoning_summary_*`` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import invalid_request
from .text import first_words

EFFORT_TOKENS = {"low": 8, "medium": 16, "high": 32}
SUMMARY_MODES = ("auto", "concise", "detailed")


@dataclass(frozen=True, slots=True)
class Reasoning:
    effort: str
    summary: str | None

    @property
    def tokens(self) -> int:
        return EFFORT_TOKENS[self.effort]


def _effort(value: object, param: str) -> str:
    if value not in EFFORT_TOKENS:
        raise invalid_request(
            f"Invalid value for '{param}': supported values are 'low', 'medium' and 'high'.",
            param=param, code="invalid_value")
    return str(value)


def chat_reasoning(body: dict[str, Any]) -> Reasoning | None:
    """``reasoning_effort`` of a chat request (None: not a reasoning request)."""
    value = body.get("reasoning_effort")
    return None if value is None else Reasoning(_effort(value, "reasoning_effort"), None)


def responses_reasoning(body: dict[str, Any]) -> Reasoning | None:
    """``reasoning`` of a Responses request (None: absent, or neither effort nor summary set)."""
    value = body.get("reasoning")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_request("'reasoning' must be an object", param="reasoning")
    summary = value.get("summary")
    if summary is not None and summary not in SUMMARY_MODES:
        raise invalid_request("Invalid value for 'reasoning.summary': supported values are 'auto', 'concise' and "
                              "'detailed'.", param="reasoning.summary", code="invalid_value")
    if value.get("effort") is None and summary is None:
        return None
    return Reasoning(_effort(value.get("effort", "medium"), "reasoning.effort"), summary)


def summary_parts(reasoning: Reasoning, question: str) -> list[list[str]]:
    """The summary as parts of words (empty without ``summary``); ``detailed`` gives two parts."""
    if reasoning.summary is None:
        return []
    topic = first_words(question, 6) or ["the", "question"]
    parts = [["**Understanding", "the", "request**", "The", "user", "asks:", *topic, "-", "I", "will", "answer",
              "briefly."]]
    if reasoning.summary == "detailed":
        parts.append(["**Checking", "the", "answer**", "Simulated", "reasoning", "at", reasoning.effort, "effort."])
    return parts
