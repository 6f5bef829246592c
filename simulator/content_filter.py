"""Azure's content filtering, triggered on purpose by a marker in the prompt.

The live service runs every prompt and completion through classifiers and reports what they found:
a prompt that trips a filter is refused with 400 ``code: "content_filter"``; a completion that
trips one stops early with ``finish_reason: "content_filter"`` (chat) or ``status: "incomplete"``
with ``incomplete_details.reason: "content_filter"`` (Responses). Chat replies also carry the
annotations (``prompt_filter_results``, per-choice ``content_filter_results``); in a stream the
prompt's annotations come first, in a chunk of their own whose ``choices`` is empty.

Tests need these paths on demand, so the simulator never classifies anything: a marker in the
prompt text says what to do (documented in simulator/README.md)::

    [[filter:prompt]]            the prompt is refused (400), category violence
    [[filter:prompt:hate]]       ... for another category (hate, sexual, violence, self_harm, jailbreak)
    [[filter:output]]            the completion is cut by the filter after a few words
    [[filter:output:self_harm]]  ... for another category (not jailbreak: it only applies to prompts)
    [[filter:annotate]]          a normal reply that carries the (all safe) annotations

The ``content_filter_annotations`` setting annotates every chat reply, as Azure does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

SEVERITY_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
PROMPT_ONLY_CATEGORIES = ("jailbreak",)
DEFAULT_CATEGORY = "violence"
FILTERED_SEVERITY = "medium"
# Words of the reply sent before an output filter cuts it (Azure filters buffered chunks, so a
# filtered completion usually shows its first words).
WORDS_BEFORE_CUT = 4
_MARKER = re.compile(r"\[\[filter:(prompt|output|annotate)(?::([a-z_]+))?\]\]")

PROMPT_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)


@dataclass(frozen=True, slots=True)
class Trigger:
    """What a marker asks for: ``stage`` is "prompt", "output" or "annotate"."""

    stage: str
    category: str


def find_trigger(text: str) -> Trigger | None:
    """The first filter marker in ``text``; an unknown category falls back to the default one."""
    match = _MARKER.search(text)
    if match is None:
        return None
    stage, category = match.group(1), match.group(2) or DEFAULT_CATEGORY
    allowed = SEVERITY_CATEGORIES + (PROMPT_ONLY_CATEGORIES if stage == "prompt" else ())
    return Trigger(stage, category if category in allowed else DEFAULT_CATEGORY)


def _severity(filtered: bool) -> dict[str, Any]:
    return {"filtered": filtered, "severity": FILTERED_SEVERITY if filtered else "safe"}


def prompt_results(flagged: str | None = None) -> dict[str, Any]:
    """One prompt's category results (Azure's ``AzureContentFilterResultForPrompt`` categories)."""
    results: dict[str, Any] = {name: _severity(name == flagged) for name in SEVERITY_CATEGORIES}
    results["jailbreak"] = {"filtered": flagged == "jailbreak", "detected": flagged == "jailbreak"}
    results["indirect_attack"] = {"filtered": False, "detected": False}
    return results


def choice_results(flagged: str | None = None) -> dict[str, Any]:
    """One completion choice's results (``AzureContentFilterResultForChoice``)."""
    results: dict[str, Any] = {name: _severity(name == flagged) for name in SEVERITY_CATEGORIES}
    results["protected_material_text"] = {"filtered": False, "detected": False}
    results["protected_material_code"] = {"filtered": False, "detected": False}
    return results


def prompt_filter_results() -> list[dict[str, Any]]:
    """Chat's top-level ``prompt_filter_results``: the (single, unflagged) prompt's annotations."""
    return [{"prompt_index": 0, "content_filter_results": prompt_results()}]


def chat_prompt_refused(category: str) -> ApiError:
    """The 400 chat answers for a filtered prompt: OpenAI's error shape plus Azure's ``innererror``."""
    return ApiError(400, {"error": {
        "message": PROMPT_MESSAGE,
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": prompt_results(category)},
    }})


def responses_prompt_refused(category: str, prompt_length: int) -> ApiError:
    """The 400 the Responses API answers for a filtered prompt: the results under ``content_filters``."""
    return ApiError(400, {"error": {
        "message": PROMPT_MESSAGE,
        "type": "invalid_request_error",
        "param": "prompt",
        "code": "content_filter",
        "content_filters": [{
            "blocked": True,
            "source_type": "prompt",
            "content_filter_raw": [],
            "content_filter_results": prompt_results(category),
            "content_filter_offsets": {"start_offset": 0, "end_offset": prompt_length, "check_offset": 0},
        }],
    }})
