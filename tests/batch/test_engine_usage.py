"""A batch's ``usage`` splits input from output tokens as the upstream reported them, line by line.

Against real Azurite and the real simulator, the handlers called in this process (``test_engine``'s
harness): the Batch object's usage must equal the sum of the ``usage`` in its own output file, while
the batch runs (summed over the chunk rows) and once it ended (the batch row's totals).
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.batch import planner
from shared.batch.view import batch_view
from shared.jobs import progress
from shared.jobs.embed import Outcome
from tests.batch.test_close_race import cancel_and_close
from tests.batch.test_engine import (
    RESPONSES,
    chat_line,
    chat_models,
    deliver,
    embedding_line,
    engine,
    make_batch,
    outputs,
    put,
    run_until_ended,
    step_message,
    take_all,
)
from tests.jobs.harness import Pipeline

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="session")]

__all__ = ["chat_models", "engine"]  # fixtures this module uses, defined with the engine's tests


def reported(lines: list[dict[str, Any]]) -> tuple[int, int]:
    """(input, output) tokens the upstream reported in these output-file lines, chat or Responses shape."""
    prompt = output = 0
    for line in lines:
        usage = line["response"]["body"]["usage"]
        prompt += usage.get("prompt_tokens", usage.get("input_tokens", 0))
        output += usage.get("completion_tokens", usage.get("output_tokens", 0))
    return prompt, output


async def view(p: Pipeline, batch_id: str) -> dict[str, Any]:
    state = await p.runtime.store.load(batch_id)
    assert state is not None
    return batch_view(batch_id, state)


def split(usage: dict[str, Any]) -> tuple[int, int, int]:
    return usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]


async def test_chat_usage_counts_completion_tokens_as_output_while_running_and_once_ended(
        engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 3)
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(6)])
    await deliver(step_message(batch_id, token))
    first, second = await take_all(engine)
    await deliver(first)
    running = await view(engine, batch_id)
    assert running["status"] == "in_progress"
    await deliver(second)
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert errors == [] and len(output) == 6
    prompt, completion = reported(output)
    assert completion > 0  # the simulator answers with words
    assert split((await view(engine, batch_id))["usage"]) == (prompt, completion, prompt + completion)
    first_prompt, first_completion = reported(output[:3])
    assert split(running["usage"]) == (first_prompt, first_completion, first_prompt + first_completion)


async def test_responses_usage_counts_output_tokens_as_output(engine: Pipeline) -> None:
    lines = [{"custom_id": f"r-{i}", "method": "POST", "url": RESPONSES,
              "body": {"model": "gpt-4o-mini", "input": f"response line {i}", "max_output_tokens": 16,
                       "store": False}} for i in range(3)]
    batch_id, token = await make_batch(engine, lines)
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    output, _ = await outputs(engine, ended)
    prompt, completion = reported(output)
    assert completion > 0
    assert split((await view(engine, batch_id))["usage"]) == (prompt, completion, prompt + completion)


async def test_embeddings_usage_is_all_input(engine: Pipeline) -> None:
    batch_id, token = await make_batch(engine, [embedding_line(i, f"text {i}") for i in range(4)])
    await put(engine, step_message(batch_id, token))
    ended = await run_until_ended(engine, batch_id)
    assert ended["status"] == "succeeded", ended
    input_tokens, output_tokens, total = split((await view(engine, batch_id))["usage"])
    # Packed lines share one upstream call: the batch counts what that call reported, all of it input.
    assert output_tokens == 0 and input_tokens == total > 0


async def test_kept_progress_keeps_the_output_tokens(engine: Pipeline) -> None:
    """A chunk handed back part-way keeps its finished lines' output tokens for the next delivery."""
    kept = Outcome({0: b"line"}, 30, output_tokens=12)
    await progress.save(engine.runtime, "batch_" + "cd" * 16, 0, kept)
    again = await progress.load(engine.runtime, "batch_" + "cd" * 16, 0)
    assert (again.tokens, again.output_tokens) == (30, 12)
    merged = Outcome({}, 5, output_tokens=1)
    merged.absorb(again)
    assert (merged.tokens, merged.output_tokens) == (35, 13)


async def test_a_cancelled_batch_keeps_the_split_of_what_it_finished(engine: Pipeline,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 3)
    batch_id, token = await make_batch(engine, [chat_line(i) for i in range(6)])
    await deliver(step_message(batch_id, token))
    first, _ = await take_all(engine)
    await deliver(first)
    ended = await cancel_and_close(engine, batch_id, token)
    assert ended["status"] == "cancelled", ended
    output, _ = await outputs(engine, ended)
    prompt, completion = reported(output)
    assert len(output) == 3 and completion > 0
    assert split((await view(engine, batch_id))["usage"]) == (prompt, completion, prompt + completion)
