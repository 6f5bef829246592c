"""Job state in Table storage: one partition per job, so any instance can answer and one query sees it all.

Rows (``layout``): ``job`` holds what was asked and the outcome; ``chunk-{n}`` rows are written once
per finished chunk (insert-or-replace, so a redelivered chunk rewrites the same row). Progress is the
sum of the chunk rows; when the job ends the sums are copied onto the job row so that reading a
finished job is one point read.

State changes that must not be lost or reversed (``succeeded``/``failed``) are conditional on the
row's ETag; a terminal status is never changed again.

An owned job or batch also has an owner-index row (``layout.owner_partition``), written before its
job row, so a listed id may name a row not written yet (or one whose creation failed) but an owned
row always has its index entry; readers (``shared.jobs.listing``) check each entry against its row.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
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
# An owner-index entry's pointer to its job or batch.
INDEX_ID_FIELD = "id"


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


def index_kind(row: Mapping[str, Any]) -> str:
    """Which list a row belongs to: ``"batch"`` (the Batch API) or ``"job"`` (an embedding job)."""
    return BATCH_KIND if row.get(KIND_FIELD) == BATCH_KIND else "job"


def index_key(job_id: str, row: Mapping[str, Any]) -> tuple[str, str] | None:
    """(PartitionKey, RowKey) of the row's owner-index entry; None for a row no caller owns (or undated).

    Follows from the row alone (owner, kind, ``created_at``: none of them ever changes), so the
    writer, the sweeper and a reader checking an entry all name the same key.
    """
    owner, created_at = row.get("owner"), row.get("created_at")
    if not isinstance(owner, str) or not owner or isinstance(created_at, bool) \
            or not isinstance(created_at, int | float):
        return None
    return layout.owner_partition(owner), layout.owner_index_row(index_kind(row), created_at, job_id)


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
        """Insert the job row (after its owner-index entry); False when it already exists (a replayed submit).

        An owned row is looked for first, so a replay (the planner creates every job it plans) writes
        no index entry of its own.
        """
        if index_key(job_id, fields) is not None and await self._exists(job_id):
            return False
        return await self._insert({"PartitionKey": job_id, "RowKey": layout.JOB_ROW, **fields})

    async def _exists(self, job_id: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await self.table.get_entity(job_id, layout.JOB_ROW, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    async def _insert(self, entity: dict[str, Any]) -> bool:
        """Create the job row, its owner-index entry first; False (and no stray entry) when the row exists."""
        from azure.core.exceptions import ResourceExistsError

        job_id = str(entity["PartitionKey"])
        key = index_key(job_id, entity)
        await self.put_index(job_id, entity)
        try:
            await self.table.create_entity(entity)
        except ResourceExistsError:
            if key is not None:  # lost a race to another create: keep only the entry of the row that exists
                existing = await self.get_row(job_id)
                if existing is None or index_key(job_id, existing) != key:
                    await self._delete_index_entry(key)
            return False
        return True

    async def _delete_index_entry(self, key: tuple[str, str]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):  # already gone: deleting is idempotent
            await self.table.delete_entity(key[0], key[1])

    async def put_index(self, job_id: str, row: Mapping[str, Any]) -> bool:
        """Write the row's owner-index entry (idempotent: the key follows from the row); False when unowned."""
        key = index_key(job_id, row)
        if key is not None:
            await self.table.upsert_entity({"PartitionKey": key[0], "RowKey": key[1], INDEX_ID_FIELD: job_id})
        return key is not None

    async def delete_index(self, job_id: str, row: Mapping[str, Any]) -> None:
        """Delete the row's owner-index entry (the sweeper, with the row); nothing to delete is fine."""
        key = index_key(job_id, row)
        if key is not None:
            await self._delete_index_entry(key)

    def owner_index(self, owner: str, kind: str, *, after: str | None,
                    per_page: int) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """The owner's index entries of one kind, newest first, after the RowKey ``after``; pages of ``per_page``."""
        prefix = layout.owner_index_prefix(kind)
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # every key with the prefix sorts below this
        return self.table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": layout.owner_partition(owner), "low": after or prefix, "high": end},
            select=["RowKey", INDEX_ID_FIELD], results_per_page=per_page).by_page()

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
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        for _ in range(8):
            row = await self.get_row(job_id)
            if row is None:
                if not create_if_missing:
                    return False
                if await self._insert({"PartitionKey": job_id, "RowKey": layout.JOB_ROW, "created_at": now(),
                                       **fields}):
                    return True
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
