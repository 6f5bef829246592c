"""Issue #14: a job's results are readable while it runs, in input order, one committed blob per chunk.

The chunk messages are taken off the queue and run one at a time, so the test knows exactly which
chunks have finished when it reads: the lines of those chunks (and only those) are readable, with
the vectors they end with; a chunk still running never shows half its lines.
"""

from __future__ import annotations

import array
import asyncio
import json
from typing import Any

import pytest

from shared.context import RequestContext
from shared.jobs import layout, progress, service
from shared.jobs.embed import Outcome
from shared.jobs.queue_trigger import handle_message
from shared.jobs.runtime import Runtime
from tests.jobs.harness import Pipeline, check_results, expected_vectors
from tests.jobs.test_close_race import take_chunks

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]
CHUNK = 2048  # inputs per chunk for these short texts (one upstream request each)


def texts(n: int, prefix: str = "live") -> list[str]:
    return [f"{prefix} text {i}" for i in range(n)]


async def read(job_id: str, **query: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The results endpoint's headers and lines."""
    reply = await service.results(RequestContext.new(30), job_id, query)
    assert reply.status == 200 and reply.events is not None, reply.body
    data = b"".join([piece async for piece in reply.events])
    return reply.headers, [json.loads(line) for line in data.splitlines()]


def vectors_of(lines: list[dict[str, Any]]) -> dict[int, list[float]]:
    """Each embedded line's vector as float32 values (what the upstream sent)."""
    return {line["index"]: array.array("f", line["embedding"]).tolist() for line in lines if "embedding" in line}


async def test_results_of_the_finished_chunks_are_readable_while_the_job_runs(pipeline: Pipeline) -> None:
    inputs = texts(2 * CHUNK + 300)  # three chunks: 2048, 2048, 300
    job_id = (await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8}))["id"]

    headers, lines = await read(job_id)  # queued, not planned: nothing yet, and it says so
    assert (headers["x-job-status"], headers["x-job-results"], lines) == ("queued", "partial", [])

    await pipeline.step()  # plan
    first, second, third = await take_chunks(pipeline)
    view = await pipeline.status(job_id)
    assert view["status"] == "running"
    assert view["results"] == {"url": f"/api/v1/embeddings/jobs/{job_id}/results",
                               "container": pipeline.runtime.container, "prefix": f"jobs/{job_id}/results/",
                               "content_type": "application/x-ndjson"}

    await handle_message(third, "third", 1)
    headers, lines = await read(job_id)
    assert (headers["x-job-status"], headers["x-job-results"]) == ("running", "partial")
    assert [line["index"] for line in lines] == list(range(2 * CHUNK, len(inputs)))  # the gap is visible

    await handle_message(first, "first", 1)
    _, lines = await read(job_id)
    assert [line["index"] for line in lines] == [*range(CHUNK), *range(2 * CHUNK, len(inputs))]
    finished = [i for i in range(len(inputs)) if not CHUNK <= i < 2 * CHUNK]
    expected = expected_vectors([inputs[i] for i in finished], "text-embedding-3-small", 8)
    assert vectors_of(lines) == dict(zip(finished, expected, strict=True))
    _, packed = await read(job_id, encoding_format="base64")  # the same lines, vectors as base64
    assert [line["index"] for line in packed] == [line["index"] for line in lines]

    await handle_message(second, "second", 1)
    assert (await pipeline.status(job_id))["status"] == "succeeded"
    headers, final = await read(job_id)
    assert (headers["x-job-status"], headers["x-job-results"]) == ("succeeded", "complete")
    check_results(final, inputs, dims=8)
    early = vectors_of(lines)
    assert {i: v for i, v in vectors_of(final).items() if i in early} == early  # read early = read at the end


async def test_a_chunk_being_written_is_not_readable_until_it_is_whole(pipeline: Pipeline,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = texts(1000, "whole")  # one chunk of 1000 inputs: four parts of 256 lines
    job_id = (await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 4}))["id"]
    await pipeline.step()
    (chunk,) = await take_chunks(pipeline)
    from shared.jobs import blobs

    staged, release = asyncio.Event(), asyncio.Event()
    stage = blobs.stage_block

    async def stage_then_hold(blob: Any, block_id: str, data: bytes) -> None:
        await stage(blob, block_id, data)
        if block_id.endswith("00002"):  # three of four parts staged
            staged.set()
            await release.wait()

    monkeypatch.setattr(blobs, "stage_block", stage_then_hold)
    worker = asyncio.create_task(handle_message(chunk, "chunk", 1))
    await asyncio.wait_for(staged.wait(), 30)
    _, lines = await read(job_id)
    assert lines == []
    release.set()
    await asyncio.wait_for(worker, 30)
    _, lines = await read(job_id)
    check_results(lines, inputs, dims=4)


async def test_a_worker_that_finishes_after_the_cancel_changes_nothing(pipeline: Pipeline,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = texts(CHUNK + 500, "late")  # two chunks
    job_id = (await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8}))["id"]
    await pipeline.step()
    first, second = await take_chunks(pipeline)
    await handle_message(first, "first", 1)

    # The second chunk's worker has passed its "has the job ended?" check and is held before it embeds.
    started, release = asyncio.Event(), asyncio.Event()
    load = progress.load

    async def load_then_hold(rt: Runtime, job: str, chunk: int) -> Outcome:
        if chunk == 1 and not started.is_set():  # the worker's read, not the cancel's
            started.set()
            await release.wait()
        return await load(rt, job, chunk)

    monkeypatch.setattr(progress, "load", load_then_hold)
    worker = asyncio.create_task(handle_message(second, "second", 1))
    await asyncio.wait_for(started.wait(), 30)
    cancelled = json.loads((await service.cancel(RequestContext.new(30), job_id)).body)
    headers, at_cancel = await read(job_id)
    release.set()
    await asyncio.wait_for(worker, 30)  # embeds its chunk and writes its blob after the job ended

    names = [b.name async for b in pipeline.runtime.storage.blob.get_container_client(
        pipeline.runtime.container).list_blobs(name_starts_with=f"jobs/{job_id}/results/")]
    assert layout.chunk_results_blob(job_id, 1) in names  # the late worker did write its blob
    assert (headers["x-job-status"], headers["x-job-results"]) == ("cancelled", "complete")
    assert await read(job_id) == (headers, at_cancel)
    failed = {i: "cancelled" for i in range(CHUNK, len(inputs))}
    check_results(at_cancel, inputs, dims=8, failed=failed)
    final = await pipeline.status(job_id)
    assert final["counts"] == cancelled["counts"] == {"total": len(inputs), "embedded": CHUNK, "failed": 500}



async def test_a_job_that_ended_before_planning_has_no_results(pipeline: Pipeline) -> None:
    from shared.errors import GatewayError
    from shared.jobs import client

    job_id = await client.submit_job(["x"], model="gpt-nope", owner="anonymous", storage=pipeline.runtime.storage,
                                     queue=pipeline.runtime.queue.queue_name)
    view = await pipeline.run_until_done(job_id)
    assert view["status"] == "failed" and "results" not in view
    with pytest.raises(GatewayError) as refused:
        await read(job_id)
    assert (refused.value.status, refused.value.code) == (409, "job_not_succeeded")
    assert "gpt-nope" in refused.value.message


async def test_a_job_that_ended_before_the_upgrade_keeps_its_one_results_blob(pipeline: Pipeline) -> None:
    inputs = texts(CHUNK + 20, "legacy")
    job_id = (await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 4}))["id"]
    assert (await pipeline.run_until_done(job_id))["status"] == "succeeded"
    _, lines = await read(job_id)
    # Storage as the earlier version left it: one results.jsonl, no per-chunk blobs.
    container = pipeline.runtime.storage.blob.get_container_client(pipeline.runtime.container)
    names = [b.name async for b in container.list_blobs(name_starts_with=layout.results_prefix(job_id))]
    data = b"".join([await (await container.download_blob(name)).readall() for name in sorted(names)])
    await container.upload_blob(layout.legacy_results_blob(job_id), data)
    for name in names:
        await container.delete_blob(name)
    headers, legacy = await read(job_id)
    assert headers["x-job-results"] == "complete" and legacy == lines
    check_results(legacy, inputs, dims=4)
