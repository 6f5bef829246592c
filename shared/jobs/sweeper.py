"""Delete expired job, batch and file data (the ``data_retention_sweep`` timer's work).

What is expired is decided by :func:`shared.jobs.retention.is_expired` on a fresh read of each row,
never by the table query alone (the query only narrows the candidates), so a running job, a file
still within its ``expires_at`` or a row changed since it was listed is left alone. Names are
rebuilt from ids that passed the strict id checks (``shared.jobs.ids``), so a row whose key looks
like ``..``, ``x/../files`` or another container's name deletes nothing but is logged.

Order makes it idempotent and safe to stop anywhere: blobs first, then the partition's other rows,
the ``job`` (or ``file``) row last and only if unchanged since it was judged, then a job's owner-index
entry (``store.delete_index``; one a crash leaves behind is skipped by lists). A run cut short (time
budget, page bound, a crash) leaves an expired row that the next run finds again; readers already
answer 404 for it. Bounded per run: at most ``max_pages`` pages of candidates per kind and
``time_budget`` seconds; what is left waits for the next run (``SweepReport.more``).

A batch's output and error files may outlive the batch (their own ``expires_at``): their blobs
under ``jobs/{batch}/`` are kept until the file itself expires, then deleted with its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shared.jobs import ids, layout, retention

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient
    from azure.storage.blob.aio import ContainerClient

    from shared.jobs.runtime import Runtime

logger = logging.getLogger("gateway.retention")

PAGE_SIZE = 100
MAX_PAGES = 20
# Well inside host.json's functionTimeout (10 minutes): a run that has this much to do stops and
# leaves the rest to the next hourly run rather than being killed half-way through an item.
TIME_BUDGET_SECONDS = 240.0
CONCURRENCY = 8
POISON_PREFIX = "poison/"

# Server-side narrowing only (every candidate is re-judged). Parameters must stand alone between
# spaces: the table SDK substitutes ``@name`` words split on spaces.
_JOB_FILTER = "RowKey eq @row and ( " + " or ".join(
    [f"{retention.RETAIN_UNTIL_FIELD} le @now", *(f"{name} le @cutoff" for name in retention.END_FIELDS)]) + " )"
_FILE_FILTER = "RowKey eq @row and ( expires_at le @now or created_at le @cutoff )"
_DERIVED_BLOB = re.compile(r"jobs/(?P<batch>[^/]+)/(?P<name>output|errors)\.jsonl")
_ROLE_OF_BLOB = {"output": "output", "errors": "error"}


@dataclass(slots=True)
class SweepReport:
    """What one run did (logged as ``retention_sweep``)."""

    jobs: int = 0
    batches: int = 0
    files: int = 0
    poison: int = 0
    blobs: int = 0
    rows: int = 0
    skipped: int = 0
    errors: int = 0
    more: bool = False


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline


def _log(event: str, **fields: Any) -> None:
    logger.info(json.dumps({"event": event, **fields}))


def file_blobs(file_id: str, blob: object) -> list[str]:
    """The blobs a file row may have its content in: its upload, or (a batch's output or error file)
    the batch's output or errors blob, accepted only when the file's id is derived from that batch."""
    names = [layout.file_blob(file_id)]
    match = _DERIVED_BLOB.fullmatch(blob) if isinstance(blob, str) else None
    if match and ids.is_batch_id(match["batch"]) \
            and ids.derived_file_id(match["batch"], _ROLE_OF_BLOB[match["name"]]) == file_id:
        names.append(blob)  # type: ignore[arg-type]
    return names


class Sweeper:
    """One run over the jobs table and container."""

    def __init__(self, rt: Runtime, *, now: float, retention_seconds: float, time_budget: float,
                 max_pages: int) -> None:
        self.rt = rt
        self.table: TableClient = rt.store.table
        self.container: ContainerClient = rt.storage.blob.get_container_client(rt.container)
        self.now = now
        self.retention = retention_seconds
        self.budget = _Budget(time_budget)
        self.max_pages = max_pages
        self.report = SweepReport()
        self._limit = asyncio.Semaphore(CONCURRENCY)

    def _expired(self, row: dict[str, Any]) -> bool:
        return retention.is_expired(row, self.now, retention=self.retention)

    async def run(self) -> SweepReport:
        params = {"now": self.now, "cutoff": self.now - self.retention}
        await self._pages(_JOB_FILTER, {**params, "row": layout.JOB_ROW}, self._sweep_job)
        await self._pages(_FILE_FILTER, {**params, "row": layout.FILE_ROW}, self._sweep_file)
        await self._sweep_poison()
        _log("retention_sweep", **asdict(self.report))
        return self.report

    async def _pages(self, query: str, params: dict[str, Any],
                     handle: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        pages = self.table.query_entities(query, parameters=params, results_per_page=PAGE_SIZE).by_page()
        count = 0
        async for page in pages:
            rows = [row async for row in page]
            await asyncio.gather(*(self._guarded(handle, row) for row in rows))
            count += 1
            if self._stop_after(pages, count):
                return

    def _stop_after(self, pages: Any, count: int) -> bool:
        """Stop at the page bound or the time budget; ``more`` when the listing had pages left."""
        if not (self.budget.spent() or count >= self.max_pages):
            return False
        self.report.more = self.report.more or getattr(pages, "continuation_token", None) is not None
        return True

    async def _guarded(self, handle: Callable[[dict[str, Any]], Awaitable[None]], row: dict[str, Any]) -> None:
        """One item; a failure is logged and counted, and the next run tries it again."""
        async with self._limit:
            if self.budget.spent():
                self.report.more = True
                return
            try:
                await handle(row)
            except Exception:
                self.report.errors += 1
                logger.warning("retention: could not delete %s/%s", str(row.get("PartitionKey"))[:80],
                               row.get("RowKey"), exc_info=True)

    def _skip(self, kind: str, key: object, reason: str) -> None:
        self.report.skipped += 1
        logger.warning(json.dumps({"event": "retention_skipped", "kind": kind, "key": str(key)[:200],
                                   "reason": reason}))

    async def _fresh(self, partition: str, row_key: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return await self.table.get_entity(partition, row_key)
        except ResourceNotFoundError:
            return None

    async def _expired_candidate(self, listed: dict[str, Any], kind: str, valid: Callable[[object], bool],
                                 row_key: str, invalid: str) -> tuple[str, dict[str, Any]] | None:
        """A listed candidate's id and fresh row, when the row is still there and expired; a key that is not a
        valid id (``invalid`` says why) is skipped and logged, never used to name anything."""
        key = listed.get("PartitionKey")
        if not valid(key):
            self._skip(kind, key, invalid)
            return None
        assert isinstance(key, str)
        row = await self._fresh(key, row_key)
        if row is None or not self._expired(row):
            return None
        return key, row

    async def _sweep_job(self, listed: dict[str, Any]) -> None:
        found = await self._expired_candidate(listed, "job", ids.is_engine_id, layout.JOB_ROW, "not a job or batch id")
        if found is None:
            return
        job_id, row = found
        keep: set[str] = set()
        if ids.is_batch_id(job_id):
            keep = await self._batch_files(job_id)
        blobs = await self._delete_blobs(f"jobs/{job_id}/", keep)
        rows = await self._delete_partition(job_id, layout.JOB_ROW, row)
        if await self._fresh(job_id, layout.JOB_ROW) is None:  # gone (not changed since judged): its index entry too
            await self.rt.store.delete_index(job_id, row)
        kind = "batch" if ids.is_batch_id(job_id) else "job"
        if kind == "batch":
            self.report.batches += 1
        else:
            self.report.jobs += 1
        _log("retention_deleted", kind=kind, id=job_id, status=row.get("status"), blobs=blobs, rows=rows,
             kept_blobs=sorted(keep))

    async def _batch_files(self, batch_id: str) -> set[str]:
        """A batch's output and error files: expired ones go with it, the blobs of live ones stay."""
        keep: set[str] = set()
        for role in ("output", "error"):
            file_id = ids.derived_file_id(batch_id, role)
            row = await self._fresh(file_id, layout.FILE_ROW)
            if row is None:
                continue
            if self._expired(row):
                await self._delete_file(file_id, row)
            else:
                keep.update(name for name in file_blobs(file_id, row.get("blob")) if name.startswith("jobs/"))
        return keep

    async def _sweep_file(self, listed: dict[str, Any]) -> None:
        found = await self._expired_candidate(listed, "file", ids.is_file_id, layout.FILE_ROW, "not a file id")
        if found is not None:
            await self._delete_file(*found)

    async def _delete_file(self, file_id: str, row: dict[str, Any]) -> None:
        blob = row.get("blob")
        names = file_blobs(file_id, blob)
        if blob is not None and blob not in names:
            self._skip("file_blob", blob, f"not a blob of {file_id}; the row is deleted, the blob left")
        blobs = 0
        for name in names:
            blobs += await self._delete_blob(name)
        rows = await self._delete_row(file_id, layout.FILE_ROW, row)
        self.report.files += 1
        _log("retention_deleted", kind="file", id=file_id, purpose=row.get("purpose"), blobs=blobs, rows=rows)

    async def _delete_blobs(self, prefix: str, keep: set[str]) -> int:
        names = [blob.name async for blob in self.container.list_blobs(name_starts_with=prefix)]
        deleted = 0
        for name in names:
            if name not in keep:
                deleted += await self._delete_blob(name)
        return deleted

    async def _delete_blob(self, name: str) -> int:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await self.container.delete_blob(name, delete_snapshots="include")
        except ResourceNotFoundError:
            return 0
        self.report.blobs += 1
        return 1

    async def _delete_partition(self, partition: str, last: str, judged: dict[str, Any]) -> int:
        """Every row of the partition, ``last`` (the row that was judged) at the end."""
        others = [entity["RowKey"] async for entity in self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"]) if entity["RowKey"] != last]
        deleted = 0
        for row_key in others:
            with contextlib.suppress(_not_found()):
                await self.table.delete_entity(partition, row_key)
                deleted += 1
                self.report.rows += 1
        return deleted + await self._delete_row(partition, last, judged)

    async def _delete_row(self, partition: str, row_key: str, judged: dict[str, Any]) -> int:
        """Delete the row only if it has not changed since it was judged expired (else the next run judges again)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        etag = judged.metadata.get("etag") if hasattr(judged, "metadata") else None
        try:
            if etag:
                await self.table.delete_entity(partition, row_key, etag=etag,
                                               match_condition=MatchConditions.IfNotModified)
            else:
                await self.table.delete_entity(partition, row_key)
        except ResourceNotFoundError:
            return 0
        except ResourceModifiedError:
            self._skip(row_key, partition, "changed since it was judged expired")
            return 0
        self.report.rows += 1
        return 1

    async def _sweep_poison(self) -> None:
        """Copies of poisoned messages (``poison/``), kept for the retention after their last write."""
        cutoff = self.now - self.retention
        pages = self.container.list_blobs(name_starts_with=POISON_PREFIX, results_per_page=PAGE_SIZE).by_page()
        count = 0
        async for page in pages:
            old = [blob.name async for blob in page
                   if blob.last_modified is not None and blob.last_modified.timestamp() <= cutoff]
            for name in old:
                if self.budget.spent():
                    self.report.more = True
                    return
                if await self._delete_blob(name):
                    self.report.poison += 1
                    _log("retention_deleted", kind="poison", blob=name)
            count += 1
            if self._stop_after(pages, count):
                return


def _not_found() -> type[Exception]:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError


async def sweep(rt: Runtime | None = None, *, now: float | None = None, time_budget: float = TIME_BUDGET_SECONDS,
                max_pages: int = MAX_PAGES) -> SweepReport:
    """Delete what has expired by ``now`` (default: the clock); see the module docstring."""
    if rt is None:
        from shared.jobs.runtime import get_runtime

        rt = await get_runtime()
    return await Sweeper(rt, now=time.time() if now is None else now, retention_seconds=retention.retention_seconds(),
                         time_budget=time_budget, max_pages=max_pages).run()
