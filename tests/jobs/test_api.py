"""Issue #14 finding 9 and 5: cancel keeps finished lines; a reused job id is refused visibly."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest

from shared.context import RequestContext
from shared.errors import GatewayError
from shared.jobs import client, service
from shared.jobs.ids import new_job_id
from tests.jobs.harness import Pipeline, check_results
from tests.jobs.test_progress import embedding_calls, pause_on_call, texts

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="session")]


async def cancel(job_id: str) -> dict[str, object]:
    reply = await service.cancel(RequestContext.new(30), job_id)
    assert reply.status == 200, reply.body
    return json.loads(reply.body)  # type: ignore[no-any-return]


async def test_cancel_stops_work_and_keeps_the_finished_lines(pipeline: Pipeline,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = texts(30)
    pause_on_call(monkeypatch, 2, limit=180)  # pieces of 10 inputs; paused after two
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    await pipeline.step()  # plan
    await pipeline.step()  # two pieces embedded, then paused
    view = await cancel(job["id"])
    assert view["status"] == "cancelled" and view["counts"] == {"total": 30, "embedded": 20, "failed": 10}
    assert (await cancel(job["id"]))["status"] == "cancelled"  # again: same answer
    for _ in range(10):  # the paused chunk comes back and does nothing
        await pipeline.step()
    calls = len(embedding_calls(pipeline))
    assert calls == 2
    lines = await pipeline.results(job["id"])
    failed = {line["index"]: "cancelled" for line in lines if "error" in line}
    assert sorted(failed) == list(range(20, 30))
    check_results(lines, inputs, dims=8, failed=failed)


async def test_a_finished_job_cannot_be_cancelled(pipeline: Pipeline) -> None:
    job = await pipeline.submit({"model": "embed", "input": texts(2), "dimensions": 8})
    await pipeline.run_until_done(job["id"])
    with pytest.raises(GatewayError) as info:
        await service.cancel(RequestContext.new(30), job["id"])
    assert info.value.status == 409 and info.value.code == "job_not_cancellable"


async def test_reusing_a_job_id_is_refused_to_the_producer(pipeline: Pipeline) -> None:
    job_id = new_job_id()
    options = {"model": "embed", "owner": "anonymous", "storage": pipeline.runtime.storage,
               "queue": pipeline.runtime.queue.queue_name, "container": pipeline.runtime.container}
    await client.submit_job(["first"], job_id=job_id, **options)  # type: ignore[arg-type]
    await pipeline.run_until_done(job_id)
    with pytest.raises(client.JobIdTaken):
        await client.submit_job(["other", "inputs"], job_id=job_id, **options)  # type: ignore[arg-type]
    assert (await pipeline.status(job_id))["counts"]["total"] == 1


async def test_a_job_for_a_chat_model_is_refused_before_any_upstream_call(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue #14 finding 6: it used to "succeed" with every input failed after 19 upstream calls.
    from shared.lazy import forget_process_state
    from tests.jobs.conftest import MODELS

    monkeypatch.setenv("OPENAI_MODELS", MODELS + ",gpt-4o-mini")
    forget_process_state()  # settings are read again
    with pytest.raises(GatewayError) as info:
        await service.submit(RequestContext.new(30), json.dumps({"model": "gpt-4o-mini", "input": ["a"]}).encode())
    assert (info.value.status, info.value.code, info.value.param) == (400, "model_not_embedding", "model")
    job_id = await client.submit_job(["a", "b"], model="gpt-4o-mini", owner="anonymous",
                                     storage=pipeline.runtime.storage, queue=pipeline.runtime.queue.queue_name,
                                     container=pipeline.runtime.container)
    done = await pipeline.run_until_done(job_id)
    assert done["status"] == "failed" and "not an embedding model" in done["error"]["message"]
    assert embedding_calls(pipeline) == []


async def test_the_embedding_model_list_is_the_setting_when_set(pipeline: Pipeline,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.lazy import forget_process_state

    monkeypatch.setenv("EMBEDDING_JOBS_MODELS", "embed")
    forget_process_state()  # settings are read again
    await pipeline.submit({"model": "embed", "input": ["a"]})
    with pytest.raises(GatewayError) as info:
        await pipeline.submit({"model": "text-embedding-3-large", "input": ["a"]})
    assert info.value.code == "model_not_embedding"


async def test_a_message_the_host_cannot_decode_ends_in_poison_blobs_not_in_poison_poison(
        pipeline: Pipeline) -> None:
    # Issue #14 finding 5: not base64 -> the host fails it on the jobs queue and on the poison queue
    # without our code running, and it ended in <queue>-poison-poison with nothing copied.
    from azure.core.exceptions import ResourceExistsError

    rt = pipeline.runtime
    strays = rt.storage.queue.get_queue_client(rt.queue.queue_name + "-poison-poison")
    with contextlib.suppress(ResourceExistsError):
        await strays.create_queue()
    sent = await strays.send_message("%%% not base64 {ejob_x} %%%")
    await rt.queue.send_message(base64.b64encode(b"not json either").decode())  # poisoned at once
    for _ in range(3):
        await pipeline.step()
    kept = rt.storage.blob.get_blob_client(rt.container, f"poison/{sent.id}.json")
    assert await (await kept.download_blob()).readall() == b"%%% not base64 {ejob_x} %%%"
    assert (await strays.get_queue_properties()).approximate_message_count == 0


async def test_results_in_base64_are_the_float_results_bit_for_bit(pipeline: Pipeline) -> None:
    import array

    inputs = texts(5)
    job = await pipeline.submit({"model": "embed", "input": inputs, "dimensions": 8})
    await pipeline.run_until_done(job["id"])
    floats = await pipeline.results(job["id"])
    check_results(floats, inputs, dims=8)
    assert await pipeline.results(job["id"], encoding_format="float") == floats
    encoded = await pipeline.results(job["id"], encoding_format="base64")
    assert [line["index"] for line in encoded] == list(range(5))
    for plain, packed in zip(floats, encoded, strict=True):
        assert base64.b64decode(packed["embedding"]) == array.array("f", plain["embedding"]).tobytes()


async def _submit_as(caller: str, body: dict[str, object]) -> str:
    ctx = RequestContext.new(30)
    ctx.caller = caller
    reply = await service.submit(ctx, json.dumps(body).encode())
    assert reply.status == 202, reply.body
    return str(json.loads(reply.body)["id"])


async def _list_as(caller: str, **query: object) -> dict[str, Any]:
    ctx = RequestContext.new(30)
    ctx.caller = caller
    reply = await service.list_jobs(ctx, query)  # type: ignore[arg-type]
    assert reply.status == 200, reply.body
    return json.loads(reply.body)  # type: ignore[no-any-return]


async def test_the_list_shows_the_callers_own_jobs_newest_first_in_pages(pipeline: Pipeline) -> None:
    # Issue #14 finding 9: no way to list one's jobs.
    mine, theirs = f"key:{new_job_id()[-16:]}", f"key:{new_job_id()[-16:]}"
    ids = [await _submit_as(mine, {"model": "embed", "input": [f"text {n}"], "dimensions": 8}) for n in range(3)]
    other = await _submit_as(theirs, {"model": "embed", "input": ["x"], "dimensions": 8})
    first = await _list_as(mine, limit=2)
    assert first["object"] == "list" and [job["id"] for job in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True and first["first_id"] == ids[2] and first["last_id"] == ids[1]
    rest = await _list_as(mine, limit=2, after=first["last_id"])
    assert [job["id"] for job in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert [job["id"] for job in (await _list_as(theirs))["data"]] == [other]
    assert (await _list_as(f"key:{new_job_id()[-16:]}"))["data"] == []
    with pytest.raises(GatewayError) as info:
        await _list_as(mine, after=other)  # another caller's job is no cursor
    assert info.value.status == 400 and info.value.code == "invalid_query_parameter"
