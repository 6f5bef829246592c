"""The simulator's background responses, cancel, resumed streams and input items, through the SDK."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from simulator.harness import SimulatorProcess

CHAT = "gpt-4o-mini"


def test_a_background_response_runs_on_its_own_clock(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=400)
    queued = client.responses.create(model=CHAT, input="later", background=True)
    assert queued.status == "queued" and queued.background is True
    running = client.responses.retrieve(queued.id)
    assert running.status == "in_progress" and running.output == [] and running.usage is None
    time.sleep(0.6)
    done = client.responses.retrieve(queued.id)
    assert done.status == "completed" and done.output_text and done.usage is not None


def test_cancel_stops_the_clock_and_counts_what_was_generated(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=100, token_delay_ms=100, reply_tokens=50)
    queued = client.responses.create(model=CHAT, input="later", background=True)
    time.sleep(0.45)  # the first token at 0.1 s, then one every 0.1 s: about 4 by now
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.usage is not None
    assert 2 <= cancelled.usage.output_tokens <= 6
    assert client.responses.cancel(queued.id).usage == cancelled.usage  # again: the same answer
    time.sleep(0.3)
    assert client.responses.retrieve(queued.id).status == "cancelled"


def test_what_cannot_be_cancelled(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    plain = client.responses.create(model=CHAT, input="now")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)
    finished = client.responses.create(model=CHAT, input="later", background=True)  # zero delays: done at once
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.responses.cancel(finished.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_missing")


def test_a_background_stream_resumes_after_an_event(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    created = client.responses.create(model=CHAT, input="later", background=True)
    whole = list(client.responses.retrieve(created.id, stream=True))
    assert [event.sequence_number for event in whole] == list(range(len(whole)))
    rest = list(client.responses.retrieve(created.id, stream=True, starting_after=5))
    assert [event.sequence_number for event in rest] == list(range(6, len(whole)))
    assert rest[-1].type == "response.completed"
    deltas = [e for e in client.responses.retrieve(created.id, stream=True, include_obfuscation=False)
              if e.type == "response.output_text.delta"]
    assert deltas and all(getattr(e, "obfuscation", None) is None for e in deltas)


def test_a_resumed_stream_keeps_the_runs_pace(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    sim.configure(ttft_ms=300, token_delay_ms=20, reply_tokens=10)
    created = client.responses.create(model=CHAT, input="later", background=True)
    started = time.monotonic()
    events = list(client.responses.retrieve(created.id, stream=True))
    # The whole run takes 0.3 s + 9 x 0.02 s from its creation; the replay does not finish sooner.
    assert time.monotonic() - started >= 0.3 and events[-1].type == "response.completed"


def test_only_background_responses_stream_again(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    plain = client.responses.create(model=CHAT, input="now")
    with pytest.raises(openai.BadRequestError):
        list(client.responses.retrieve(plain.id, stream=True))


def test_input_items_page_both_ways(sim: SimulatorProcess, client: openai.OpenAI) -> None:
    inputs = [{"role": "user", "content": f"turn {n}"} for n in range(5)]
    created = client.responses.create(model=CHAT, input=inputs)  # type: ignore[arg-type]
    every = list(client.responses.input_items.list(created.id, order="asc", limit=2))  # pages of 2
    assert [item.content[0].text for item in every] == [f"turn {n}" for n in range(5)]  # type: ignore[index,union-attr]
    newest = client.responses.input_items.list(created.id, limit=2)
    assert [item.content[0].text for item in newest.data] == ["turn 4", "turn 3"]  # type: ignore[index,union-attr]
    assert newest.has_more is True
    with httpx.Client(base_url=sim.api_url, headers={"api-key": "k"}) as http:
        before = http.get(f"/responses/{created.id}/input_items",
                          params={"order": "asc", "before": every[3].id, "limit": 2}).json()
        assert [item["content"][0]["text"] for item in before["data"]] == ["turn 1", "turn 2"]
        assert http.get(f"/responses/{created.id}/input_items", params={"limit": 101}).status_code == 400
