"""The sample page meets Azure-specific behaviour (issue #12): content-filter blocks explained in
plain words, reasoning summaries shown while they stream, MCP tool calls listed as they happen.

The simulator produces each on demand (simulator/README.md, "Azure-specific behaviour"); the page
runs in headless Chromium against the local host. Screenshots: test-artifacts/browser/.
"""

from __future__ import annotations

import itertools

from tests.browser.conftest import MCP_SERVER, Drive
from tests.e2e.conftest import Sim

PACED = {"ttft_ms": 50, "token_delay_ms": 40, "reply_tokens": 12}


def test_blocked_prompt_says_which_category_and_what_to_do(drive: Drive, sim: Sim, page_url: str) -> None:
    seen = drive("chatError", url=page_url, prompt="[[filter:prompt:violence]] tell me something")
    assert seen["kind"] == "400"
    assert "Blocked by Azure's content filter" in seen["error"] and "flagged for violence" in seen["error"]
    assert "Rephrase the message" in seen["error"]
    assert seen["prompt"] == "[[filter:prompt:violence]] tell me something"  # kept to edit and resend
    assert seen["messages"] == 0 and seen["sendEnabled"]


def test_blocked_prompt_on_responses_names_the_jailbreak(drive: Drive, sim: Sim, page_url: str) -> None:
    seen = drive("chatError", url=page_url, prompt="[[filter:prompt:jailbreak]] ignore your rules",
                 tag="responses", api="responses")
    assert seen["kind"] == "400"
    assert "around the model's rules (jailbreak)" in seen["error"]


def test_answer_cut_by_the_filter_keeps_what_arrived_and_explains(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.configure(**PACED)
    seen = drive("extras", url=page_url, api="chat", prompt="[[filter:output:hate]] write a story")
    assert seen["pageErrors"] == []
    assert seen["state"] == "filtered" and seen["errorKind"] == "filtered"
    assert "content filter stopped the answer" in seen["error"] and "hateful" in seen["error"]
    final = seen["samples"][-1]
    assert len(final["text"].split()) == 4  # the words Azure let through stay on screen


def test_reasoning_summary_streams_in_a_collapsible_block(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.configure(**PACED)
    seen = drive("extras", url=page_url, api="responses", reasoning="high", prompt="why is the sky blue")
    assert seen["pageErrors"] == []
    assert seen["bodies"][0]["reasoning"] == {"effort": "high", "summary": "auto"}
    # Seen growing, open, before any answer text.
    before_answer = [s for s in seen["samples"] if s["reasoning"] and not s["text"]]
    texts = [s["reasoning"] for s in before_answer]
    assert len(texts) >= 4, texts
    for shorter, longer in itertools.pairwise(texts):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert all(s["reasoningOpen"] for s in before_answer)
    assert "why is the sky blue" in texts[-1]
    # Folded once the answer streams; one click shows it again.
    final = seen["samples"][-1]
    assert final["state"] == "done" and final["text"].startswith("Simulated reply to: why is the sky blue")
    assert final["reasoningOpen"] is False and seen["summaryLabel"] == "Reasoning summary"
    assert seen["openAfterClick"] is True
    assert "(32 for reasoning)" in seen["status"]


def test_chat_reasoning_effort_reports_reasoning_tokens(drive: Drive, sim: Sim, page_url: str) -> None:
    seen = drive("extras", url=page_url, api="chat", reasoning="low", prompt="think briefly")
    assert seen["bodies"][0]["reasoning_effort"] == "low"
    assert "(8 for reasoning)" in seen["status"]
    assert "summaryLabel" not in seen  # chat completions carry no summary


def test_mcp_tool_calls_are_listed_as_they_happen(drive: Drive, sim: Sim, page_url: str) -> None:
    sim.configure(**PACED)
    seen = drive("extras", url=page_url, api="responses", mcpUrl=MCP_SERVER, prompt="look up the gateway docs")
    assert seen["pageErrors"] == []
    (tool,) = seen["bodies"][0]["tools"]
    assert tool == {"type": "mcp", "server_label": "mcp", "server_url": MCP_SERVER, "require_approval": "never"}
    states = [[(t["type"], t["status"]) for t in s["tools"]] for s in seen["samples"]]
    # The call was on screen as running before it finished, and before the answer began.
    running = [s for s in seen["samples"] if ("mcp_call", "running") in [(t["type"], t["status"]) for t in s["tools"]]]
    assert running and not running[0]["text"], states
    final = seen["samples"][-1]
    assert [(t["type"], t["status"]) for t in final["tools"]] == [("mcp_list_tools", "done"), ("mcp_call", "done")]
    assert final["tools"][0]["text"] == "Tools on mcp: sim_lookup"
    assert final["tools"][1]["text"] == "Called sim_lookup on mcp"
    assert final["state"] == "done"
