"""A chunk that finishes just as its job is closed: the job's counts and its results file still agree.

The race, placed exactly: a worker runs a chunk and is held just before it records the chunk row;
the job is then closed (cancel, time budget), and the held worker records its row at the moment the
close reads what it kept for that chunk, after the close has read which chunks are done. Whichever
way the job ends, the counts its status shows once it is terminal never change afterwards, and they
are the lines its results file holds.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.context import RequestContext
from shared.jobs import progress, service
from shared.jobs.embed import Outcome
from shared.jobs.finalize import close_incomplete
from shared.jobs.queue_trigger import handle_message
from shared.jobs.runtime import Runtime
from shared.jobs.store import CANCELLED, TERMINAL, ChunkState, JobStore
from tests.jobs.harness import Pipeline

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]


class LateChunk:
    """Holds chunk ``chunk``'s worker before it records its row, and lets it record when the close reads it.

    ``views`` collects what a caller would see (via ``view``) right after the late row landed, when
    the job was already terminal then.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, chunk: int,
                 view: Callable[[], Awaitable[tuple[str, Any]]]) -> None:
        self.chunk, self.view = chunk, view
        self.arrived, self.release, self.recorded = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.closing = False
        self.views: list[Any] = []
        record, load = JobStore.record_chunk, progress.load

        async def record_late(store: JobStore, job_id: str, state: ChunkState) -> None:
            if state.chunk == self.chunk and not self.recorded.is_set():
                self.arrived.set()
                await self.release.wait()
                await record(store, job_id, state)
                self.recorded.set()
                return
            await record(store, job_id, state)

        async def load_after_the_late_row(rt: Runtime, job_id: str, chunk: int) -> Outcome:
            if self.closing and chunk == self.chunk and not self.release.is_set():
                self.release.set()
                await self.recorded.wait()
                status, seen = await self.view()
                if status in TERMINAL:
                    self.views.append(seen)
            return await load(rt, job_id, chunk)

        monkeypatch.setattr(JobStore, "record_chunk", record_late)
        monkeypatch.setattr(progress, "load", load_after_the_late_row)


async def take_chunks(p: Pipeline) -> list[bytes]:
    """The chunk messages on the queue, removed from it, in chunk order."""
    taken: list[bytes] = []
    while batch := [m async for m in p.runtime.queue.receive_messages(max_messages=32, visibility_timeout=60)]:
        for message in batch:
            taken.append(base64.b64decode(message.content))
            await p.runtime.queue.delete_message(message)
    return sorted(taken, key=lambda body: int(json.loads(body).get("chunk", -1)))


async def test_a_chunk_recorded_while_the_job_is_cancelled_counts_as_its_results_say(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [f"race text {i}" for i in range(2100)]  # two chunks: 2048 inputs and 52
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    job_id = job["id"]
    await pipeline.step()  # plan
    first, second = await take_chunks(pipeline)
    await handle_message(first, "first", 1)

    async def view() -> tuple[str, Any]:
        seen = await pipeline.status(job_id)
        return seen["status"], seen["counts"]

    late = LateChunk(monkeypatch, 1, view)
    worker = asyncio.create_task(handle_message(second, "second", 1))
    await asyncio.wait_for(late.arrived.wait(), 30)
    late.closing = True
    await close_incomplete(pipeline.runtime, job_id, status=CANCELLED, code="cancelled",
                           message="The job was cancelled; finished lines are kept.")
    await asyncio.wait_for(worker, 30)

    final = await pipeline.status(job_id)
    assert final["status"] in ("cancelled", "succeeded"), final
    assert late.views in ([], [final["counts"]])  # once terminal, the counts never change
    lines = await pipeline.results(job_id)
    assert [line["index"] for line in lines] == list(range(2100))
    embedded = sum("embedding" in line for line in lines)
    assert final["counts"] == {"total": 2100, "embedded": embedded, "failed": 2100 - embedded}
    again = json.loads((await service.status(RequestContext.new(30), job_id)).body)
    assert again["counts"] == final["counts"]  # the late chunk row is never summed in
