"""Azure-specific behaviour of the simulator, through the official SDK: content filters on demand,
reasoning tokens and summaries. (Their shapes are refereed by test_contract.py.)"""

from __future__ import annotations

import openai
import pytest

from simulator.harness import SimulatorProcess

CHAT = "gpt-4o-mini"


def _user(text: str) -> list[openai.types.chat.ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def test_filtered_prompt_is_a_bad_request_with_code_content_filter(client: openai.OpenAI,
                                                                   sim: SimulatorProcess) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=CHAT, messages=_user("[[filter:prompt:sexual]] hi"))
    assert raised.value.code == "content_filter"
    body = raised.value.body
    assert isinstance(body, dict)
    assert body["innererror"]["content_filter_result"]["sexual"]["filtered"] is True
    assert sim.stats()["statuses"] == {"400": 1}


def test_only_the_last_user_message_is_judged(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=[
        {"role": "user", "content": "[[filter:prompt]] earlier"}, {"role": "assistant", "content": "no"},
        {"role": "user", "content": "fine now"}])
    assert reply.choices[0].finish_reason == "stop"
    assert "prompt_filter_results" not in (reply.model_extra or {})


def test_output_filter_cuts_the_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=_user("[[filter:output:violence]] a story"))
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is not None and len(choice.message.content.split()) == 4
    assert (choice.model_extra or {})["content_filter_results"]["violence"] == {"filtered": True,
                                                                                 "severity": "medium"}
    assert reply.usage is not None and reply.usage.completion_tokens == 4


def test_reasoning_effort_adds_reasoning_tokens(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=CHAT, messages=_user("think"))
    for effort, tokens in (("low", 8), ("medium", 16), ("high", 32)):
        reply = client.chat.completions.create(model=CHAT, messages=_user("think"), reasoning_effort=effort)
        assert reply.usage is not None and plain.usage is not None
        details = reply.usage.completion_tokens_details
        assert details is not None and details.reasoning_tokens == tokens
        assert reply.usage.completion_tokens == plain.usage.completion_tokens + tokens
        assert reply.choices[0].message.content == plain.choices[0].message.content


def test_reasoning_counts_against_the_output_cap(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=CHAT, messages=_user("think"), reasoning_effort="low",
                                           max_completion_tokens=10)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 10
    assert reply.choices[0].message.content is not None and len(reply.choices[0].message.content.split()) == 2


def test_responses_reasoning_summary_streams_before_the_answer(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=CHAT, input="why is the sky blue", stream=True,
                                          reasoning={"effort": "medium", "summary": "detailed"}))
    kinds = [e.type for e in events]
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index("response.output_text.delta")
    done = [e for e in events if e.type == "response.reasoning_summary_text.done"]
    assert [e.summary_index for e in done] == [0, 1]
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta"
                     and e.summary_index == 0)
    assert deltas == done[0].text and "why is the sky blue" in deltas
    final = events[-1]
    assert final.type == "response.completed"
    reasoning = final.response.output[0]
    assert reasoning.type == "reasoning" and [s.text for s in reasoning.summary] == [e.text for e in done]
    assert final.response.reasoning is not None and final.response.reasoning.effort == "medium"
    usage = final.response.usage
    assert usage is not None and usage.output_tokens_details.reasoning_tokens == 16


def test_responses_reasoning_without_summary_has_an_empty_summary(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT, input="hi", reasoning={"effort": "low"})
    assert response.output[0].type == "reasoning" and response.output[0].summary == []
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=CHAT, input="hi", extra_body={"reasoning": {"effort": "low",
                                                                                 "summary": "verbose"}})


def test_responses_output_filter_ends_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT, input="[[filter:output]] go on")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "content_filter"
    events = list(client.responses.create(model=CHAT, input="[[filter:output]] go on", stream=True))
    assert events[-1].type == "response.incomplete"
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=CHAT, input="[[filter:prompt]] go on")
    assert raised.value.code == "content_filter"
