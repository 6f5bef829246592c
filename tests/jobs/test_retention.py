"""Expiry of job, batch and file data against real Azurite (issues #14, #15).

In process (``pipeline``): a finished job is stamped, answers 404 once expired and is deleted by
the sweeper, which never deletes anything that has not expired, whatever a row's key says. Through
the local stack (``e2e``): the ``data_retention_sweep`` timer, indexed from ``function_app.py`` and
run by the local host on demand, deletes an expired job that the HTTP routes already hide.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode

from shared.context import RequestContext
from shared.errors import GatewayError
from shared.jobs import layout, service, sweeper
from shared.jobs.ids import derived_file_id, new_batch_id, new_file_id, new_job_id
from shared.jobs.sweeper import sweep
from tests.jobs.conftest import JobStack

pytestmark = pytest.mark.timeout(180)
session_loop = pytest.mark.asyncio(loop_scope="session")
DAY = 86400.0
KEEP = 30 * DAY


async def _blobs(p: Any, prefix: str = "") -> set[str]:
    container = p.runtime.storage.blob.get_container_client(p.runtime.container)
    return {b.name async for b in container.list_blobs(name_starts_with=prefix)}


async def _put_blob(p: Any, name: str, data: bytes = b"{}\n") -> None:
    container = p.runtime.storage.blob.get_container_client(p.runtime.container)
    await container.upload_blob(name, data, overwrite=True)


async def _rows(p: Any, partition: str) -> list[str]:
    table = p.runtime.store.table
    return [e["RowKey"] async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})]


async def _put_row(p: Any, partition: str, row_key: str, **fields: Any) -> None:
    await p.runtime.store.table.upsert_entity({"PartitionKey": partition, "RowKey": row_key, **fields},
                                              mode=UpdateMode.REPLACE)


async def _merge(p: Any, partition: str, row_key: str, **fields: Any) -> None:
    await p.runtime.store.table.upsert_entity({"PartitionKey": partition, "RowKey": row_key, **fields},
                                              mode=UpdateMode.MERGE)


async def _not_found(call: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await call
    assert caught.value.status == 404
    return caught.value


async def _finished_job(p: Any, text: str) -> dict[str, Any]:
    job = await p.submit({"model": "embed", "input": [f"{text} {i}" for i in range(3)]})
    done: dict[str, Any] = await p.run_until_done(job["id"])
    assert done["status"] == "succeeded", done
    return done


@session_loop
async def test_a_finished_job_is_stamped_then_hidden_then_deleted(pipeline: Any,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    expiring = await _finished_job(pipeline, "expiring")
    kept = await _finished_job(pipeline, "kept")
    row = await pipeline.runtime.store.get_row(expiring["id"])
    assert row["retain_until"] == pytest.approx(row["completed_at"] + KEEP, abs=0.01)
    assert expiring["expires_at"] == int(row["retain_until"])
    assert await _blobs(pipeline, f"jobs/{expiring['id']}/")

    await _merge(pipeline, expiring["id"], "job", retain_until=time.time() - 1)  # its retention has run out
    ctx = RequestContext.new(30)
    error = await _not_found(service.status(ctx, expiring["id"]))
    assert error.code == "job_not_found"
    await _not_found(service.results(ctx, expiring["id"], {}))
    await _not_found(service.cancel(ctx, expiring["id"]))
    listed = json.loads((await service.list_jobs(ctx, {"limit": 100})).body)
    assert [j["id"] for j in listed["data"]] == [kept["id"]]
    with pytest.raises(GatewayError) as caught:  # an expired id is not a cursor either
        await service.list_jobs(ctx, {"limit": 100, "after": expiring["id"]})
    assert caught.value.status == 400

    rows = await _rows(pipeline, expiring["id"])
    blobs = await _blobs(pipeline, f"jobs/{expiring['id']}/")
    with caplog.at_level(logging.INFO, logger="gateway.retention"):
        report = await sweep(pipeline.runtime)
    assert (report.jobs, report.rows, report.blobs, report.errors, report.more) == (1, len(rows), len(blobs), 0, False)
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.retention"]
    assert {"event": "retention_deleted", "kind": "job", "id": expiring["id"], "status": "succeeded",
            "blobs": len(blobs), "rows": len(rows), "kept_blobs": []} in logged
    assert logged[-1]["event"] == "retention_sweep" and logged[-1]["jobs"] == 1
    assert await _blobs(pipeline, f"jobs/{expiring['id']}/") == set()
    assert await _rows(pipeline, expiring["id"]) == []
    # The other job is untouched and still served.
    assert await _blobs(pipeline, f"jobs/{kept['id']}/")
    assert (await pipeline.status(kept["id"]))["status"] == "succeeded"
    assert len(await pipeline.results(kept["id"])) == 3
    assert (await sweep(pipeline.runtime)).jobs == 0  # idempotent: nothing left to do


@session_loop
async def test_the_sweeper_deletes_only_what_has_expired(pipeline: Any) -> None:
    now = time.time()
    old = now - KEEP - DAY
    everything_else = {"inputs/theirs.jsonl", "other/keep.json", "files/not-a-file-id.jsonl", "jobs/loose.jsonl"}
    for name in everything_else:
        await _put_blob(pipeline, name)

    running = new_job_id()  # old, and still running: kept whatever its timestamps say
    await _put_row(pipeline, running, "job", status="running", created_at=old, completed_at=old, retain_until=old)
    await _put_blob(pipeline, layout.chunk_blob(running, 0))
    restamped = new_job_id()  # ended long ago but kept longer by its stamp
    await _put_row(pipeline, restamped, "job", status="succeeded", completed_at=old, retain_until=now + DAY)
    await _put_blob(pipeline, layout.chunk_results_blob(restamped, 0))
    # Keys that are not ids (Table keys cannot hold "/"): skipped, nothing derived from them is touched.
    hostile_jobs = ("..", "ejob_..", "ejob_" + "A" * 32, f"{new_job_id()}..", "embedding-jobs", "")
    for hostile in hostile_jobs:
        await _put_row(pipeline, hostile, "job", status="succeeded", completed_at=old, retain_until=old)
    await _put_row(pipeline, "..", "file", created_at=old, expires_at=old, blob="other/keep.json")
    await _put_row(pipeline, "file-..", "file", created_at=old, expires_at=old, blob="files/not-a-file-id.jsonl")

    # Files: expired upload, live upload, and an expired row naming another job's results.
    expired_upload, live_upload, pointing = new_file_id(), new_file_id(), new_file_id()
    await _put_row(pipeline, expired_upload, "file", purpose="batch", created_at=old,
                   blob=layout.file_blob(expired_upload))
    await _put_blob(pipeline, layout.file_blob(expired_upload))
    await _put_row(pipeline, live_upload, "file", purpose="batch", created_at=old, expires_at=now + 3600,
                   blob=layout.file_blob(live_upload))
    await _put_blob(pipeline, layout.file_blob(live_upload))
    await _put_row(pipeline, pointing, "file", purpose="batch", created_at=old,
                   blob=layout.chunk_results_blob(restamped, 0))

    # A batch that expired, whose output file outlives it (own expires_at) and whose error file does not.
    batch = new_batch_id()
    output, errors = derived_file_id(batch, "output"), derived_file_id(batch, "error")
    await _put_row(pipeline, batch, "job", kind="batch", status="succeeded", expires_at=old, completed_at=old,
                   retain_until=now - 1, output_file_id=output, error_file_id=errors)
    await _put_row(pipeline, batch, layout.chunk_row(0), chunk=0)
    for name in (layout.chunk_blob(batch, 0), layout.batch_output_blob(batch), layout.batch_errors_blob(batch)):
        await _put_blob(pipeline, name)
    await _put_row(pipeline, output, "file", purpose="batch_output", created_at=old, expires_at=now + DAY,
                   blob=layout.batch_output_blob(batch))
    await _put_row(pipeline, errors, "file", purpose="batch_output", created_at=old,
                   blob=layout.batch_errors_blob(batch))

    report = await sweep(pipeline.runtime)
    assert (report.batches, report.jobs, report.errors) == (1, 0, 0)
    assert report.files == 3  # the expired upload, the pointing row, the batch's error file
    assert report.skipped == len(hostile_jobs) + 3  # the hostile keys and the blob the pointing row named

    remaining = await _blobs(pipeline)
    assert everything_else <= remaining
    assert layout.chunk_blob(running, 0) in remaining and await _rows(pipeline, running) == ["job"]
    assert layout.chunk_results_blob(restamped, 0) in remaining and await _rows(pipeline, restamped) == ["job"]
    for hostile in hostile_jobs:
        assert "job" in await _rows(pipeline, hostile)
    assert sorted(await _rows(pipeline, "..")) == ["file", "job"] and await _rows(pipeline, "file-..") == ["file"]
    assert layout.file_blob(expired_upload) not in remaining and await _rows(pipeline, expired_upload) == []
    assert layout.file_blob(live_upload) in remaining and await _rows(pipeline, live_upload) == ["file"]
    assert await _rows(pipeline, pointing) == []
    assert await _rows(pipeline, batch) == [] and await _rows(pipeline, errors) == []
    assert await _blobs(pipeline, f"jobs/{batch}/") == {layout.batch_output_blob(batch)}
    assert await _rows(pipeline, output) == ["file"]

    # When the output file's own expiry passes, it goes with its content.
    await _merge(pipeline, output, "file", expires_at=now - 1)
    report = await sweep(pipeline.runtime)
    assert report.files == 1 and await _rows(pipeline, output) == []
    assert await _blobs(pipeline, f"jobs/{batch}/") == set()
    assert everything_else <= await _blobs(pipeline)


@session_loop
async def test_a_sweep_is_bounded_and_the_next_one_goes_on(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    old = time.time() - KEEP - DAY
    jobs = [new_job_id() for _ in range(5)]
    for job_id in jobs:
        await _put_row(pipeline, job_id, "job", status="failed", completed_at=old)
        await _put_blob(pipeline, layout.input_blob(job_id))

    nothing = await sweep(pipeline.runtime, time_budget=0)
    assert (nothing.jobs, nothing.more) == (0, True)
    monkeypatch.setattr(sweeper, "PAGE_SIZE", 2)
    first = await sweep(pipeline.runtime, max_pages=1)
    assert (first.jobs, first.more) == (2, True)
    rest = [await sweep(pipeline.runtime, max_pages=1) for _ in range(3)]
    assert sum(r.jobs for r in rest) == 3 and not rest[-1].more
    assert all([await _rows(pipeline, job_id) == [] for job_id in jobs])
    assert await _blobs(pipeline, "jobs/") == set()


@session_loop
async def test_poisoned_message_copies_are_kept_for_the_retention(pipeline: Any) -> None:
    await _put_blob(pipeline, layout.poison_blob("some-message"))
    assert (await sweep(pipeline.runtime)).poison == 0
    later = await sweep(pipeline.runtime, now=time.time() + KEEP + 60)
    assert later.poison == 1 and await _blobs(pipeline, "poison/") == set()


def test_the_timer_deletes_an_expired_job_through_the_local_host(e2e: JobStack) -> None:
    response = e2e.http.post("/api/v1/embeddings/jobs", json={"model": "embed", "input": ["a", "b"]})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while e2e.http.get(f"/api/v1/embeddings/jobs/{job_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.25)
    with TableClient.from_connection_string(e2e.connection_string, "embeddingjobs") as table:
        table.upsert_entity({"PartitionKey": job_id, "RowKey": "job", "retain_until": time.time() - 1},
                            mode=UpdateMode.MERGE)
        assert e2e.http.get(f"/api/v1/embeddings/jobs/{job_id}").status_code == 404
        listed = e2e.http.get("/api/v1/embeddings/jobs", params={"limit": 100}).json()["data"]
        assert job_id not in [j["id"] for j in listed]

        host = e2e.stack.host_url
        runs = e2e.http.get(f"{host}/admin/host/status").json()["timers"]["data_retention_sweep"]["runs"]
        assert e2e.http.post(f"{host}/admin/functions/data_retention_sweep", json={"input": ""}).status_code == 202
        while True:
            timer = e2e.http.get(f"{host}/admin/host/status").json()["timers"]["data_retention_sweep"]
            if timer["runs"] > runs and not timer["running"]:
                break
            assert time.monotonic() < deadline + 60
            time.sleep(0.2)
        assert timer["failures"] == 0 and timer["schedule"] == "0 23 * * * *"
        assert list(table.query_entities("PartitionKey eq @pk", parameters={"pk": job_id})) == []
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(e2e.connection_string, "embedding-jobs") as container:
        assert list(container.list_blobs(name_starts_with=f"jobs/{job_id}/")) == []
