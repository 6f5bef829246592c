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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.jobs import layout

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from shared.jobs.messages import JobMessage

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
# A batch being stopped (no new chunk starts; the close message writes what it finished), and a batch
# whose completion window ran out before it finished (ended like a cancel, with its finished lines).
CANCELLING, EXPIRED = "cancelling", "expired"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
# Set on a job that ended failed or cancelled once its finished lines (and errors for the rest) are committed.
PARTIAL_RESULTS_FIELD = "partial_results"
# Table string properties hold at most 64 KiB (32k UTF-16 characters); reasons are cut well below.
MAX_REASON_CHARS = 2000
# What a row holds when it is not an embedding job: "batch" for the Batch API (an embedding job has none).
KIND_FIELD = "kind"
BATCH_KIND = "batch"
# The caller's metadata, as JSON (not "metadata": TableEntity already has a .metadata for the ETag).
METADATA_FIELD = "user_metadata"
# How a job or batch is being ended, claimed (on the row, conditionally) before its results or files are
# written: whoever ends it writes them, alone, and the row's totals are theirs (``finalize``, ``shared.batch.finish``).
ENDING_FIELD = "ending"


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
    """A finished chunk's row; ``output_tokens`` (of ``tokens``) only for batch lines that generate text."""

    chunk: int
    count: int
    embedded: int
    failed: int
    tokens: int
    output_tokens: int = 0


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

    def stray_chunks(self) -> list[int] | None:
        """The chunk rows, when they are not exactly chunks 0 to planned - 1 (then nothing may end the job)."""
        found = [c.chunk for c in self.chunks]
        return None if found == list(range(self.planned_chunks or 0)) else found

    def totals(self) -> tuple[int, int, int]:
        """(embedded, failed, tokens): the row's once the job ended, else summed over chunk rows.

        Never re-summed once ended: what ended it wrote the totals its results hold, and a chunk
        that finished after (recorded by a worker that was already running) is not in them.
        """
        if self.status in TERMINAL:
            return _int(self.row.get("embedded")), _int(self.row.get("failed")), _int(self.row.get("tokens"))
        return (sum(c.embedded for c in self.chunks), sum(c.failed for c in self.chunks),
                sum(c.tokens for c in self.chunks))

    def output_tokens(self) -> int:
        """Of the tokens, those the upstream generated (a batch's chat and Responses lines); as :meth:`totals`."""
        if self.status in TERMINAL:
            return _int(self.row.get("output_tokens"))
        return sum(c.output_tokens for c in self.chunks)

    def metadata(self) -> dict[str, str] | None:
        raw = self.row.get(METADATA_FIELD)
        return json.loads(raw) if isinstance(raw, str) and raw else None


def ending_is(status: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A ``transition`` condition: the row is not being ended, or (``status`` given) being ended that way."""

    def check(row: Mapping[str, Any]) -> bool:
        return row.get(ENDING_FIELD) in (None, "", status)

    return check


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
                                         tokens=_int(entity.get("tokens")),
                                         output_tokens=_int(entity.get("output_tokens"))))
        if row is None:
            return None
        chunks.sort(key=lambda c: c.chunk)
        return JobState(row, chunks)

    async def owned_rows(self, owner: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The rows of one owner's embedding jobs (``kind=None``) or batches (``kind="batch"``),
        newest first (ties broken by id, so pages are stable).

        One filtered query across partitions: Table storage scans the table for it, which is fine at
        the job counts a gateway holds; an owner index (one partition per owner) is the next step.
        Embedding-job rows have no ``kind``, and a filter on a missing property matches nothing, so
        they are told apart here rather than in the query.
        """
        query, parameters = "RowKey eq @row and owner eq @owner", {"row": layout.JOB_ROW, "owner": owner}
        if kind is not None:
            query, parameters = query + " and kind eq @kind", {**parameters, "kind": kind}
        entities = self.table.query_entities(query, parameters=parameters)
        rows: list[dict[str, Any]] = [entity async for entity in entities
                                      if kind is not None or entity.get(KIND_FIELD) is None]
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

        entity = {"PartitionKey": job_id, "RowKey": layout.chunk_row(state.chunk), "chunk": state.chunk,
                  "count": state.count, "embedded": state.embedded, "failed": state.failed,
                  "tokens": int64(state.tokens), "done_at": now()}
        if state.output_tokens:  # embedding chunks generate none: their rows stay as they were
            entity["output_tokens"] = int64(state.output_tokens)
        await self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def transition(self, job_id: str, fields: Mapping[str, Any], *, only_from: frozenset[str] | None = None,
                         create_if_missing: bool = False,
                         when: Callable[[Mapping[str, Any]], bool] | None = None) -> bool:
        """Apply ``fields`` unless the job is terminal (or not in ``only_from``, or its row fails ``when``);
        retried on ETag races, so ``when`` judges the row the change is made to.

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
            if state.status in TERMINAL or (only_from is not None and state.status not in only_from) \
                    or (when is not None and not when(row)):
                return False
            try:
                await self.merge(job_id, fields, etag=state.etag)
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        return False

    async def fail(self, job_id: str, code: str, message: str, **extra: Any) -> bool:
        """Mark the job failed with a readable reason, unless it already ended or is being ended."""
        return await self.transition(job_id, {"status": FAILED, "error_code": code, "error": clip(message),
                                              "completed_at": now(), **extra}, create_if_missing=True,
                                     when=ending_is(None))
