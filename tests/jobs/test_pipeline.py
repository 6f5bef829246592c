"""The job pipeline against real Azurite and the real simulator, handlers called in this process.

Failure points are injected between the steps (crash after embedding, crash after recording, the
same message twice, a throttled deployment), which a whole-stack test can only hit by luck.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.jobs import client, layout, messages
from shared.jobs.ids import new_job_id
from tests.jobs.harness import Pipeline, check_results

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]
# The harness reads status as the local, keyless caller; queued jobs name it as their owner to be readable.
OWNER = "anonymous"


def texts(n: int, prefix: str = "text") -> list[str]:
    return [f"{prefix} number {i} about embeddings" for i in range(n)]


async def test_http_job_runs_to_completion(pipeline: Pipeline) -> None:
    inputs: list[Any] = ["hello", {"id": "doc-1", "text": "world"}, "", "again"]
    job = await pipeline.submit({"model": "embed", "input": inputs, "metadata": {"team": "search"}})
    assert job["status"] == "queued" and job["counts"]["total"] == 4
    done = await pipeline.run_until_done(job["id"])
    assert done["status"] == "succeeded", done
    assert done["counts"] == {"total": 4, "embedded": 3, "failed": 1}
    assert done["usage"]["prompt_tokens"] > 0 and done["metadata"] == {"team": "search"}
    assert done["results"]["prefix"] == layout.results_prefix(job["id"])
    check_results(await pipeline.results(job["id"]), inputs, failed={2: "empty_input"})


async def test_large_http_job_goes_through_a_blob_and_several_chunks(pipeline: Pipeline) -> None:
    inputs = texts(4500)
    job = await pipeline.submit({"model": "text-embedding-3-small", "input": inputs, "dimensions": 32})
    queued = await pipeline.queued_messages()
    assert queued[0]["input_blob"] == {"name": layout.input_blob(job["id"])} and "input" not in queued[0]
    done = await pipeline.run_until_done(job["id"])
    assert done["counts"] == {"total": 4500, "embedded": 4500, "failed": 0}
    assert pipeline.simulator.stats()["counts"].get("embeddings") == 3  # 2048 + 2048 + 404
    check_results(await pipeline.results(job["id"]), inputs, dims=32)


async def test_job_enqueued_with_the_helper(pipeline: Pipeline) -> None:
    inputs = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts(20))]
    job_id = await client.submit_job(inputs, model="embed", dimensions=16, owner=OWNER,
                                     storage=pipeline.runtime.storage, queue=pipeline.runtime.queue.queue_name,
                                     container=pipeline.runtime.container)
    queued = await pipeline.status(job_id)  # the helper records the job, so it is visible at once
    assert queued["status"] == "queued" and queued["model"] == "embed"
    done = await pipeline.run_until_done(job_id)
    assert done["status"] == "succeeded" and done["counts"]["embedded"] == 20
    check_results(await pipeline.results(job_id), inputs, dims=16)


async def test_helper_moves_big_inputs_to_a_blob(pipeline: Pipeline) -> None:
    inputs = texts(3000, prefix="a somewhat longer text to pass the queue message limit")
    job_id = await client.submit_job(inputs, model="embed", dimensions=8, owner=OWNER, storage=pipeline.runtime.storage,
                                     queue=pipeline.runtime.queue.queue_name, container=pipeline.runtime.container)
    (queued,) = await pipeline.queued_messages()
    assert queued["input_blob"]["name"] == layout.input_blob(job_id)
    done = await pipeline.run_until_done(job_id)
    assert done["counts"]["embedded"] == 3000
    check_results(await pipeline.results(job_id), inputs, dims=8)


async def test_inputs_from_a_blob_the_producer_wrote(pipeline: Pipeline) -> None:
    inputs: list[Any] = [*texts(10), {"id": "x", "text": "with id"}, "lorem ipsum " * 5000]
    blob = pipeline.runtime.storage.blob.get_blob_client(pipeline.runtime.container, "inputs/corpus.jsonl")
    await blob.upload_blob("\n".join(json.dumps(v) for v in inputs) + "\n\n", overwrite=True)
    job_id = await client.submit_job(model="embed", input_blob="inputs/corpus.jsonl", dimensions=8, owner=OWNER,
                                     storage=pipeline.runtime.storage, queue=pipeline.runtime.queue.queue_name)
    done = await pipeline.run_until_done(job_id)
    assert done["counts"] == {"total": 12, "embedded": 11, "failed": 1}
    check_results(await pipeline.results(job_id), inputs, dims=8, failed={11: "input_too_long"})


async def _enqueue_raw(pipeline: Pipeline, body: str) -> None:
    await pipeline.runtime.queue.send_message(base64.b64encode(body.encode()).decode())


async def test_invalid_message_is_poisoned_at_once_and_fails_its_job(pipeline: Pipeline) -> None:
    job_id = new_job_id()
    await _enqueue_raw(pipeline, json.dumps({"schema": "embedding-job/v1", "type": "job", "id": job_id,
                                             "model": "embed", "input": [42], "owner": OWNER}))
    status = await pipeline.run_until_done(job_id)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "invalid_message"
    assert "input" in status["error"]["message"]
    assert len(pipeline.poisoned) == 1 and job_id.encode() in pipeline.poisoned[0]
    assert status["error"]["poison_blob"]["name"].startswith("poison/")
    kept = pipeline.runtime.storage.blob.get_blob_client(pipeline.runtime.container,
                                                         status["error"]["poison_blob"]["name"])
    assert job_id.encode() in await (await kept.download_blob()).readall()


async def test_garbage_is_kept_even_without_a_job(pipeline: Pipeline) -> None:
    await _enqueue_raw(pipeline, "this is not json")
    for _ in range(3):
        await pipeline.step()
    assert pipeline.poisoned == [b"this is not json"]
    names = [b.name async for b in pipeline.runtime.storage.blob.get_container_client(
        pipeline.runtime.container).list_blobs(name_starts_with="poison/")]
    assert len(names) == 1


async def test_unknown_model_fails_the_job(pipeline: Pipeline) -> None:
    job_id = await client.submit_job(["x"], model="gpt-nope", owner=OWNER, storage=pipeline.runtime.storage,
                                     queue=pipeline.runtime.queue.queue_name)
    status = await pipeline.run_until_done(job_id)
    assert status["status"] == "failed" and status["error"]["code"] == "invalid_job"
    assert "gpt-nope" in status["error"]["message"]


async def test_duplicated_job_message_gives_one_set_of_results(pipeline: Pipeline) -> None:
    inputs = texts(2500)
    message = client.build_message(job_id=new_job_id(), model="embed", inputs=inputs, dimensions=8, owner=OWNER)
    body = messages.to_json(message)
    # Too big for one message: the producer's claim check, sent twice.
    blob = pipeline.runtime.storage.blob.get_blob_client(pipeline.runtime.container, "inputs/dup/in.jsonl")
    await blob.upload_blob("\n".join(json.dumps(t) for t in inputs), overwrite=True)
    body = messages.to_json(message.model_copy(update={"input": None,
                                                       "input_blob": messages.BlobRef(name="inputs/dup/in.jsonl")}))
    await _enqueue_raw(pipeline, body)
    await _enqueue_raw(pipeline, body)
    done = await pipeline.run_until_done(message.id)
    assert done["counts"] == {"total": 2500, "embedded": 2500, "failed": 0}
    check_results(await pipeline.results(message.id), inputs, dims=8)


async def test_duplicated_chunk_after_the_job_ended_changes_nothing(pipeline: Pipeline) -> None:
    job = await pipeline.submit({"model": "embed", "input": texts(5), "dimensions": 8})
    done = await pipeline.run_until_done(job["id"])
    calls = pipeline.simulator.stats()["counts"]["embeddings"]
    chunk = {"schema": "embedding-job/v1", "type": "chunk", "id": job["id"], "chunk": 0, "start": 0,
             "count": 5, "model": "text-embedding-3-small", "dimensions": 8}
    await _enqueue_raw(pipeline, json.dumps(chunk))
    assert await pipeline.run_until_done(job["id"]) == done
    assert pipeline.simulator.stats()["counts"]["embeddings"] == calls
    check_results(await pipeline.results(job["id"]), texts(5), dims=8)


async def test_crash_after_embedding_is_redone_without_duplicates(pipeline: Pipeline,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.jobs import store

    original = store.JobStore.record_chunk
    crashes = {"left": 2}

    async def crashing(self: store.JobStore, job_id: str, state: store.ChunkState) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("worker died after staging its blocks")
        await original(self, job_id, state)

    monkeypatch.setattr(store.JobStore, "record_chunk", crashing)
    inputs = texts(4200)
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    done = await pipeline.run_until_done(job["id"])
    assert done["counts"] == {"total": 4200, "embedded": 4200, "failed": 0}
    check_results(await pipeline.results(job["id"]), inputs, dims=8)


async def test_crash_between_recording_and_finalizing(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.jobs import worker

    original = worker.finalize
    crashes = {"left": 1}

    async def crashing(rt: Any, job_id: str) -> bool:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("worker died before finalizing")
        return await original(rt, job_id)

    monkeypatch.setattr(worker, "finalize", crashing)
    job = await pipeline.submit({"model": "embed", "input": texts(3), "dimensions": 8})
    done = await pipeline.run_until_done(job["id"])
    assert done["status"] == "succeeded"
    check_results(await pipeline.results(job["id"]), texts(3), dims=8)


async def test_a_long_throttle_hands_the_message_back(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.jobs import embed

    # Production sleeps waits shorter than ~20 s inside the retry policy; shrink that budget so a
    # 3 s wait counts as long here.
    monkeypatch.setattr(embed, "REQUEST_DEADLINE_SECONDS", 2.0)
    pipeline.simulator.fault({"kind": "status", "status": 429, "path": "embeddings", "count": 1,
                              "retry_after_ms": 3000})
    job = await pipeline.submit({"model": "embed", "input": texts(3), "dimensions": 8})
    await pipeline.step()  # plan
    await pipeline.step()  # chunk: 429 for 3 s, longer than the request's budget allows to sleep
    props = await pipeline.runtime.queue.get_queue_properties()
    assert props.approximate_message_count == 1
    assert await pipeline.queued_messages() == []  # invisible for the wait
    done = await pipeline.run_until_done(job["id"], timeout=30)
    assert done["status"] == "succeeded"
    check_results(await pipeline.results(job["id"]), texts(3), dims=8)


async def test_upstream_refusing_one_input_fails_only_that_input(pipeline: Pipeline) -> None:
    # Few cl100k tokens (repeated words) but many characters: we send it, the simulator's
    # chars/4 count is over 8192 and it refuses the request; the worker splits and isolates it.
    tricky = "hello world " * 2800
    inputs = ["before", tricky, "after"]
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    done = await pipeline.run_until_done(job["id"])
    assert done["counts"] == {"total": 3, "embedded": 2, "failed": 1}
    check_results(await pipeline.results(job["id"]), inputs, dims=8, failed={1: "context_length_exceeded"})


async def test_a_failure_waiting_cannot_cure_ends_in_poison_and_a_failed_job(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    # Passing failures (upstream 5xx, outages) are retried within the job's time budget
    # (tests/jobs/test_progress.py); anything else is left to the host's redelivery and poisoning.
    from shared.jobs import worker

    async def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("upstream sent 3 embeddings for 2 inputs")

    monkeypatch.setattr(worker, "embed", broken)
    pipeline.max_dequeue = 2
    job = await pipeline.submit({"model": "embed", "input": texts(2), "dimensions": 8})
    status = await pipeline.run_until_done(job["id"], timeout=60)
    assert status["status"] == "failed" and status["error"]["code"] == "message_poisoned"
    assert "3 embeddings for 2 inputs" in status["error"]["message"]


async def test_a_parameter_the_upstream_refuses_fails_the_job_at_once(pipeline: Pipeline) -> None:
    job = await pipeline.submit({"model": "embed", "input": texts(300), "dimensions": 5000})
    status = await pipeline.run_until_done(job["id"])
    assert status["status"] == "failed" and "dimensions" in status["error"]["message"]
    assert pipeline.simulator.stats()["counts"]["embeddings"] == 1  # no splitting for a job-level error
