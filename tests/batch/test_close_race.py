"""A batch whose last chunk finishes just as the batch is closed (out of time): its counts and files agree.

The held worker (``tests.jobs.test_close_race.LateChunk``) records the last chunk's row, and so tries
to finalize the batch, at the moment the close reads what that chunk kept. Either ending is right
(completed, every line answered; or expired, the late chunk's lines ``batch_expired``), but only
one: the Batch object's ``request_counts`` are the lines of its output and error files.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.batch import finish, planner
from shared.batch.view import batch_view
from shared.jobs.finalize import close_incomplete
from shared.jobs.store import CANCELLING, ENDING_FIELD, FAILED, RUNNING, now
from tests.batch import test_engine as harness
from tests.batch.test_engine import chat_models, deliver, engine, outputs, row, step_message
from tests.jobs.harness import Pipeline
from tests.jobs.test_close_race import LateChunk

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]

__all__ = ["chat_models", "engine"]  # fixtures this module uses, defined with the engine's tests


async def cancel_and_close(p: Pipeline, batch_id: str, token: str) -> dict[str, Any]:
    """What ``POST /v1/batches/{id}/cancel`` does (the row to cancelling, then a close message), handled; the row."""
    assert await p.runtime.store.transition(batch_id, {"status": CANCELLING, "cancelling_at": now()},
                                            only_from=frozenset({RUNNING}))
    await deliver(step_message(batch_id, token, "close"))
    return await row(p, batch_id)


async def first_chunk_done(p: Pipeline, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, bytes]:
    """A 4-line chat batch in chunks of 2, planned, its first chunk done: (batch id, token, second chunk)."""
    monkeypatch.setattr(planner, "CHAT_CHUNK_LINES", 2)
    batch_id, token = await harness.make_batch(p, [harness.chat_line(i) for i in range(4)])
    await deliver(step_message(batch_id, token))
    first, second = await harness.take_all(p)
    await deliver(first)
    return batch_id, token, second


async def test_the_last_chunk_recorded_while_the_batch_runs_out_of_time_counts_as_its_files_say(
        engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id, _, second = await first_chunk_done(engine, monkeypatch)

    async def view() -> tuple[str, Any]:
        state = await engine.runtime.store.load(batch_id)
        assert state is not None
        return state.status, batch_view(batch_id, state)["request_counts"]

    late = LateChunk(monkeypatch, 1, view)
    worker = asyncio.create_task(deliver(second))
    await asyncio.wait_for(late.arrived.wait(), 30)
    late.closing = True
    # What a chunk handed back past its time budget does (``queue_trigger.end_early``).
    await close_incomplete(engine.runtime, batch_id, status=FAILED, code="time_budget_exhausted",
                           message="The batch's time ran out.")
    await asyncio.wait_for(worker, 30)

    ended = await row(engine, batch_id)
    assert ended["status"] in ("succeeded", "expired"), ended
    _, counts = await view()
    assert late.views in ([], [counts])  # once terminal, the counts never change
    output, errors = await outputs(engine, ended)
    assert counts == {"total": 4, "completed": len(output), "failed": len(errors)}
    assert sorted(line["custom_id"] for line in output + errors) == [f"chat-{i}" for i in range(4)]
    if ended["status"] == "expired":
        assert {line["error"]["code"] for line in errors} == {"batch_expired"}
    else:
        assert errors == []


async def test_one_close_at_a_time_and_a_crashed_close_is_completed_once_its_claim_is_stale(
        engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id, token, _ = await first_chunk_done(engine, monkeypatch)
    assert await engine.runtime.store.transition(batch_id, {"status": CANCELLING, "cancelling_at": now()},
                                                 only_from=frozenset({RUNNING}))
    writes = finish._close_files

    async def crash(*args: Any) -> dict[str, Any]:
        raise ConnectionError("the host died while writing the files")

    monkeypatch.setattr(finish, "_close_files", crash)
    with pytest.raises(ConnectionError):
        await finish.close_batch(engine.runtime, batch_id)  # claimed, then died
    monkeypatch.setattr(finish, "_close_files", writes)
    assert not await finish.close_batch(engine.runtime, batch_id)  # a fresh claim is another call's to finish
    assert (await row(engine, batch_id))["status"] == CANCELLING
    claimed = (await row(engine, batch_id))[finish.ENDING_AT_FIELD]
    await engine.runtime.store.merge(batch_id, {finish.ENDING_AT_FIELD: claimed - finish.ENDING_CLAIM_SECONDS - 1})
    await deliver(step_message(batch_id, token, "close"))  # the claim is stale: its invocation is gone
    ended = await row(engine, batch_id)
    assert ended["status"] == "cancelled", ended
    output, errors = await outputs(engine, ended)
    assert [line["custom_id"] for line in output] == ["chat-0", "chat-1"]
    assert [(line["custom_id"], line["error"]["code"]) for line in errors] == [
        ("chat-2", "batch_cancelled"), ("chat-3", "batch_cancelled")]


async def test_a_cancel_that_arrives_while_the_files_are_being_written_is_too_late(
        engine: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id, token = await harness.make_batch(engine, [harness.chat_line(i) for i in range(3)])
    await deliver(step_message(batch_id, token))
    (chunk,) = await harness.take_all(engine)
    writes = finish._files

    async def crash(*args: Any) -> dict[str, Any]:
        raise ConnectionError("storage went away while committing")

    monkeypatch.setattr(finish, "_files", crash)
    await deliver(chunk)  # every line ran; finalizing claimed the ending, then failed (retried later)
    monkeypatch.setattr(finish, "_files", writes)
    current = await row(engine, batch_id)
    assert (current["status"], current[ENDING_FIELD]) == (RUNNING, "succeeded")
    ended = await cancel_and_close(engine, batch_id, token)
    assert ended["status"] == "succeeded", ended
    output, errors = await outputs(engine, ended)
    assert errors == [] and [line["custom_id"] for line in output] == ["chat-0", "chat-1", "chat-2"]
