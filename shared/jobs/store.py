"""Job state in Table storage: one partition per job, so any instance can answer and one query sees it all.

Rows (``layout``): ``job`` holds what was asked and the outcome; ``chunk-{n}`` rows are written once
per finished chunk (insert-or-replace, so a redelivered chunk rewrites the same row). Progress is the
sum of the chunk rows; when the job ends the sums are copied onto the job row so that reading a
finished job is one point read.

State changes that must not be lost or reversed (``succeeded``/``failed``) are conditional on the
row's ETag; a terminal status is never changed again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.jobs import layout

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from shared.jobs.messages import JobMessage

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
# Set on a job that ended failed or cancelled once its finished lines (and errors for the rest) are committed.
PARTIAL_RESULTS_FIELD = "partial_results"
# Table string properties hold at most 64 KiB (32k UTF-16 characters); reasons are cut well below.
MAX_REASON_CHARS = 2000
# The caller's metadata, as JSON (not "metadata": TableEntity already has a .metadata for the ETag).
METADATA_FIELD = "user_metadata"


def now() -> float:
    return round(time.time(), 3)


def _int(value: Any, default: int = 0) -> int:
    """Ints come back plain (Int32) or wrapped (Int64 ``EntityProperty``)."""
    if value is None:
        return default
    return int(getattr(value, "value", value))


def int64(value: int) -> Any:
    from azure.data.tables import EdmType, EntityProperty

    return EntityProperty(int(value), EdmType.INT64)


def clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


@dataclass(slots=True)
class ChunkState:
    chunk: int
    count: int
    embedded: int
    failed: int
    tokens: int


@dataclass(slots=True)
class JobState:
    """The job row plus (while running) the aggregate of its chunk rows."""

    row: dict[str, Any]
    chunks: list[ChunkState] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.row.get("status", QUEUED))

    @property
    def planned_chunks(self) -> int | None:
        value = self.row.get("chunks")
        return None if value is None else _int(value)

    @property
    def etag(self) -> str | None:
        metadata = getattr(self.row, "metadata", None)
        return metadata.get("etag") if isinstance(metadata, Mapping) else None

    def all_chunks_done(self) -> bool:
        planned = self.planned_chunks
        return planned is not None and len({c.chunk for c in self.chunks}) >= planned

    def totals(self) -> tuple[int, int, int]:
        """(embedded, failed, tokens), from the job row once final, else summed over chunk rows."""
        if self.status in TERMINAL and "embedded" in self.row:
            return _int(self.row.get("embedded")), _int(self.row.get("failed")), _int(self.row.get("tokens"))
        return (sum(c.embedded for c in self.chunks), sum(c.failed for c in self.chunks),
                sum(c.tokens for c in self.chunks))

    def metadata(self) -> dict[str, str] | None:
        raw = self.row.get(METADATA_FIELD)
        return json.loads(raw) if isinstance(raw, str) and raw else None


def fields_for(message: JobMessage, deployment: str | None, source: str, *, token: str,
               owner: str | None = None) -> dict[str, Any]:
    """The job row's fields at submission (``deployment`` once the model is resolved).

    ``token`` proves the job's messages (``shared.jobs.proof``); ``owner`` is the caller who may read
    the job and whose budget it spends (``shared.jobs.access``), the message's own when it names one.
    """
    fields: dict[str, Any] = {"status": QUEUED, "model": message.model, "created_at": now(), "source": source,
                              "token": token}
    owner = owner or message.owner
    if owner is not None:
        fields["owner"] = owner
    if deployment is not None:
        fields["deployment"] = deployment
    if message.dimensions is not None:
        fields["dimensions"] = message.dimensions
    if message.metadata:
        fields[METADATA_FIELD] = json.dumps(message.metadata, ensure_ascii=False)
    return fields


class JobStore:
    """Reads and writes one job's rows."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def create(self, job_id: str, fields: Mapping[str, Any]) -> bool:
        """Insert the job row; False when it already exists (a redelivered or replayed submit)."""
        from azure.core.exceptions import ResourceExistsError

        try:
            await self.table.create_entity({"PartitionKey": job_id, "RowKey": layout.JOB_ROW, **fields})
        except ResourceExistsError:
            return False
        return True

    async def get_row(self, job_id: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return await self.table.get_entity(job_id, layout.JOB_ROW)
        except ResourceNotFoundError:
            return None

    async def load(self, job_id: str) -> JobState | None:
        """The job row and all chunk rows, in one partition query."""
        row: dict[str, Any] | None = None
        chunks: list[ChunkState] = []
        entities = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": job_id})
        async for entity in entities:
            key = entity["RowKey"]
            if key == layout.JOB_ROW:
                row = entity
            elif key.startswith(layout.CHUNK_ROW_PREFIX):
                chunks.append(ChunkState(chunk=_int(entity.get("chunk")), count=_int(entity.get("count")),
                                         embedded=_int(entity.get("embedded")), failed=_int(entity.get("failed")),
                                         tokens=_int(entity.get("tokens"))))
        if row is None:
            return None
        chunks.sort(key=lambda c: c.chunk)
        return JobState(row, chunks)

    async def owned_rows(self, owner: str) -> list[dict[str, Any]]:
        """The job rows of one owner, newest first (ties broken by id, so pages are stable).

        One filtered query across partitions: Table storage scans the table for it, which is fine at
        the job counts a gateway holds; an owner index (one partition per owner) is the next step.
        """
        entities = self.table.query_entities("RowKey eq @row and owner eq @owner",
                                             parameters={"row": layout.JOB_ROW, "owner": owner})
        rows: list[dict[str, Any]] = [entity async for entity in entities]
        rows.sort(key=lambda row: (float(row.get("created_at") or 0), row["PartitionKey"]), reverse=True)
        return rows

    async def merge(self, job_id: str, fields: Mapping[str, Any], etag: str | None = None) -> None:
        """Merge fields into the job row (conditional on ``etag`` when given)."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": job_id, "RowKey": layout.JOB_ROW, **fields}
        if etag is None:
            await self.table.upsert_entity(entity, mode=UpdateMode.MERGE)
        else:
            await self.table.update_entity(entity, mode=UpdateMode.MERGE, etag=etag,
                                           match_condition=MatchConditions.IfNotModified)

    async def chunk_done(self, job_id: str, chunk: int) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await self.table.get_entity(job_id, layout.chunk_row(chunk), select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    async def record_chunk(self, job_id: str, state: ChunkState) -> None:
        from azure.data.tables import UpdateMode

        await self.table.upsert_entity({
            "PartitionKey": job_id, "RowKey": layout.chunk_row(state.chunk), "chunk": state.chunk,
            "count": state.count, "embedded": state.embedded, "failed": state.failed,
            "tokens": int64(state.tokens), "done_at": now(),
        }, mode=UpdateMode.REPLACE)

    async def transition(self, job_id: str, fields: Mapping[str, Any], *, only_from: frozenset[str] | None = None,
                         create_if_missing: bool = False) -> bool:
        """Apply ``fields`` unless the job is terminal (or not in ``only_from``); retried on ETag races.

        Returns True when this call made the change.
        """
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        for _ in range(8):
            row = await self.get_row(job_id)
            if row is None:
                if not create_if_missing:
                    return False
                try:
                    await self.table.create_entity({"PartitionKey": job_id, "RowKey": layout.JOB_ROW,
                                                    "created_at": now(), **fields})
                    return True
                except ResourceExistsError:
                    continue
            state = JobState(row)
            if state.status in TERMINAL or (only_from is not None and state.status not in only_from):
                return False
            try:
                await self.merge(job_id, fields, etag=state.etag)
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        return False

    async def fail(self, job_id: str, code: str, message: str, **extra: Any) -> bool:
        """Mark the job failed with a readable reason, unless it already ended."""
        return await self.transition(job_id, {"status": FAILED, "error_code": code, "error": clip(message),
                                              "completed_at": now(), **extra}, create_if_missing=True)
