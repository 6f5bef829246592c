"""Listing one caller's jobs and batches from the owner index, against real Azurite.

What a list costs is counted in entities the table service must read: a point read or a
partition-scoped query reads what it returns; a query without ``PartitionKey eq`` is a scan of the
whole table in Azure Table storage, so it counts every entity the table holds.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.batch import files
from shared.batch import service as batch_service
from shared.context import RequestContext
from shared.errors import GatewayError
from shared.jobs import layout, service
from shared.jobs.ids import new_file_id, new_job_id
from shared.jobs.store import JobStore
from shared.jobs.sweeper import sweep
from tests.jobs.harness import Pipeline

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="session")]
_SCOPED = re.compile(r"^\s*PartitionKey eq @\w+")


class _Counted:
    """An async pager that counts the entities it yields (``async for`` or ``by_page()``)."""

    def __init__(self, paged: Any, counter: CountingTable) -> None:
        self._paged, self._counter = paged, counter

    async def _count(self, items: Any) -> AsyncIterator[Any]:
        async for item in items:
            self._counter.entities += 1
            yield item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._count(self._paged)

    async def _pages(self, pages: Any) -> AsyncIterator[Any]:
        async for page in pages:
            yield self._count(page)

    def by_page(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return self._pages(self._paged.by_page(*args, **kwargs))


class CountingTable:
    """The store's table client, counting the entities the service reads to answer (see the module doc)."""

    def __init__(self, table: Any, table_size: int) -> None:
        self._table, self._size = table, table_size
        self.entities = 0
        self.scans: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    async def get_entity(self, *args: Any, **kwargs: Any) -> Any:
        entity = await self._table.get_entity(*args, **kwargs)
        self.entities += 1
        return entity

    def query_entities(self, query_filter: str, **kwargs: Any) -> Any:
        if not _SCOPED.match(query_filter):
            self.scans.append(query_filter)
            self.entities += self._size
            return self._table.query_entities(query_filter, **kwargs)
        return _Counted(self._table.query_entities(query_filter, **kwargs), self)


def _ctx(caller: str) -> RequestContext:
    ctx = RequestContext.new(30)
    ctx.caller = caller
    return ctx


def _caller() -> str:
    return f"key:{secrets.token_hex(8)}"


async def _submit(caller: str, text: str = "hello") -> str:
    reply = await service.submit(_ctx(caller), json.dumps({"model": "embed", "input": [text]}).encode())
    assert reply.status == 202, reply.body
    return str(json.loads(reply.body)["id"])


async def _list(caller: str, **query: Any) -> dict[str, Any]:
    reply = await service.list_jobs(_ctx(caller), query)
    assert reply.status == 200, reply.body
    return json.loads(reply.body)  # type: ignore[no-any-return]


def _job_fields(owner: str, created_at: float, **extra: Any) -> dict[str, Any]:
    return {"status": "succeeded", "model": "embed", "created_at": created_at, "source": "http", "token": "t",
            "owner": owner, "completed_at": created_at + 1, "embedded": 1, "failed": 0, "tokens": 1, **extra}


async def _fill(store: JobStore, owners: list[str], per_owner: int) -> None:
    """``per_owner`` finished jobs for each owner, written as submit writes them (with their index entries)."""
    limit = asyncio.Semaphore(32)
    start = time.time() - 3600

    async def one(n: int, owner: str) -> None:
        async with limit:
            assert await store.create(new_job_id(), _job_fields(owner, round(start + n * 0.5, 3)))

    await asyncio.gather(*(one(n, owner) for n, owner in enumerate(owners * per_owner)))


async def _table_size(store: JobStore) -> int:
    return len([e async for e in store.table.list_entities(select=["RowKey"])])


async def test_a_callers_list_reads_its_own_rows_not_the_whole_table(pipeline: Pipeline,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = pipeline.runtime.store
    await _fill(store, [_caller() for _ in range(20)], 100)  # 2,000 jobs of 20 other callers
    mine = _caller()
    ids = [await _submit(mine, f"text {n}") for n in range(3)]
    size = await _table_size(store)
    assert size >= 2000
    counting = CountingTable(store.table, size)
    monkeypatch.setattr(store, "table", counting)

    first = await _list(mine, limit=2)
    assert [job["id"] for job in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    rest = await _list(mine, limit=2, after=first["last_id"])
    assert [job["id"] for job in rest["data"]] == ids[:1] and rest["has_more"] is False

    assert counting.scans == []
    # Both pages: index entries (<= limit + 1 each), one point read per entry and for the cursor,
    # and the chunk rows of the (still queued) jobs: a few dozen at most, never the table.
    assert counting.entities <= 30, counting.entities


async def test_a_job_created_between_two_pages_neither_repeats_nor_hides_older_ones(pipeline: Pipeline) -> None:
    mine = _caller()
    older = [await _submit(mine, f"text {n}") for n in range(5)]
    first = await _list(mine, limit=2)
    assert [job["id"] for job in first["data"]] == older[::-1][:2]
    newer = await _submit(mine, "arrived between the pages")
    seen = [job["id"] for job in first["data"]]
    page = first
    while page["has_more"]:
        page = await _list(mine, limit=2, after=page["last_id"])
        seen += [job["id"] for job in page["data"]]
    assert seen == older[::-1]  # every older job once, in order; the new one is not among them
    assert [job["id"] for job in (await _list(mine))["data"]] == [newer, *older[::-1]]


async def test_entries_whose_row_is_missing_expired_or_not_theirs_are_skipped_and_pages_still_fill(
        pipeline: Pipeline) -> None:
    store = pipeline.runtime.store
    mine = _caller()
    ids = [await _submit(mine, f"text {n}") for n in range(3)]
    # An entry whose row is not written yet (or whose create failed), newer than every job.
    await store.table.upsert_entity({"PartitionKey": layout.owner_partition(mine),
                                     "RowKey": layout.owner_index_row("job", time.time() + 60, new_job_id()),
                                     "id": new_job_id()})
    # An expired job of the caller's, between the others.
    expired = new_job_id()
    row = await store.get_row(ids[1])
    assert row is not None
    past = float(row["created_at"]) + 0.0005
    assert await store.create(expired, _job_fields(mine, past, retain_until=time.time() - 1))
    # An entry in the caller's partition pointing at another caller's job.
    theirs = await _submit(_caller(), "not yours")
    their_row = await store.get_row(theirs)
    assert their_row is not None
    await store.table.upsert_entity({"PartitionKey": layout.owner_partition(mine),
                                     "RowKey": layout.owner_index_row("job", their_row["created_at"], theirs),
                                     "id": theirs})

    first = await _list(mine, limit=2)
    assert [job["id"] for job in first["data"]] == [ids[2], ids[1]] and first["has_more"] is True
    rest = await _list(mine, limit=2, after=ids[1])
    assert [job["id"] for job in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert (await _list(mine, limit=3))["has_more"] is False
    for cursor in (expired, theirs, "ejob_" + "0" * 32, "x/../y", "batch_" + "0" * 32):
        with pytest.raises(GatewayError) as refused:
            await _list(mine, after=cursor)
        assert (refused.value.status, refused.value.code) == (400, "invalid_query_parameter")


async def _index(store: JobStore, owner: str) -> list[dict[str, Any]]:
    return [e async for e in store.table.query_entities("PartitionKey eq @pk",
                                                         parameters={"pk": layout.owner_partition(owner)})]


async def test_a_replayed_or_racing_create_leaves_exactly_one_index_entry(pipeline: Pipeline,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = pipeline.runtime.store
    mine = _caller()
    job_id, at = new_job_id(), round(time.time() - 100, 3)
    assert await store.create(job_id, _job_fields(mine, at))
    assert not await store.create(job_id, _job_fields(mine, at + 1))  # a replay (the planner's create)

    async def not_yet(_: str) -> bool:  # the race: the row appears between the look and the insert
        return False

    monkeypatch.setattr(store, "_exists", not_yet)
    assert not await store.create(job_id, _job_fields(mine, at + 2))
    entries = await _index(store, mine)
    assert [(e["RowKey"], e["id"]) for e in entries] == [(layout.owner_index_row("job", at, job_id),
                                                          job_id)]
    assert [job["id"] for job in (await _list(mine))["data"]] == [job_id]


async def test_the_sweeper_deletes_the_index_entry_with_the_job(pipeline: Pipeline) -> None:
    store = pipeline.runtime.store
    mine = _caller()
    kept, gone = new_job_id(), new_job_id()
    now = time.time()
    assert await store.create(kept, _job_fields(mine, now - 20))
    assert await store.create(gone, _job_fields(mine, now - 10, retain_until=now - 1))
    assert len(await _index(store, mine)) == 2
    report = await sweep(pipeline.runtime)
    assert report.jobs == 1 and report.errors == 0
    assert await store.get_row(gone) is None
    assert [e["id"] for e in await _index(store, mine)] == [kept]
    await sweep(pipeline.runtime)  # nothing left to delete: still fine
    assert [e["id"] for e in await _index(store, mine)] == [kept]


async def test_a_callers_jobs_and_batches_are_listed_apart(pipeline: Pipeline) -> None:
    rt = pipeline.runtime
    mine = _caller()
    jobs = [await _submit(mine, f"text {n}") for n in range(2)]
    file_id = new_file_id()
    await files.record_file(rt, file_id, owner=mine, purpose="batch", filename="in.jsonl", size=10, lines=2,
                            blob=layout.file_blob(file_id), endpoint="/v1/embeddings", model="embed")
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    reply = await batch_service.create(_ctx(mine), json.dumps(body).encode())
    batch_id = json.loads(reply.body)["id"]
    assert [job["id"] for job in (await _list(mine))["data"]] == jobs[::-1]
    batches = json.loads((await batch_service.list_batches(_ctx(mine), {})).body)
    assert [b["id"] for b in batches["data"]] == [batch_id] and batches["has_more"] is False
    assert batches["data"][0]["object"] == "batch"
    with pytest.raises(GatewayError) as refused:  # a job id is no batch cursor, and the other way round
        await batch_service.list_batches(_ctx(mine), {"after": jobs[0]})
    assert refused.value.status == 400
    with pytest.raises(GatewayError):
        await _list(mine, after=batch_id)


async def test_a_job_first_recorded_as_failed_is_listed_for_its_owner(pipeline: Pipeline) -> None:
    # A queue job whose first message was rejected: its row is created failed (store.fail), owned as it said.
    mine = _caller()
    job_id = new_job_id()
    assert await pipeline.runtime.store.fail(job_id, "invalid_job", "the job message is broken", owner=mine)
    listed = (await _list(mine))["data"]
    assert [(job["id"], job["status"]) for job in listed] == [(job_id, "failed")]
