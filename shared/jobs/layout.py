"""Where a job's pieces live in storage; the one place that spells blob names and table keys.

Blobs (container ``EMBEDDING_JOBS_CONTAINER``)::

    jobs/{id}/input.jsonl             inputs of an HTTP job too large for a queue message
    jobs/{id}/chunks/{n:06d}.jsonl    normalised inputs of chunk n (written by the planner)
    jobs/{id}/chunks/{n:06d}.partial.jsonl  what a paused chunk already embedded (until it is done)
    jobs/{id}/results/{n:06d}.jsonl   results of chunk n, one line per input in input order (written
                                      by its worker, whole, before the chunk row)
    jobs/{id}/results/{n:06d}.closed.jsonl  results of chunk n as the job's early end left them (kept
                                      vectors, error lines); replaces the chunk's plain blob for readers
    jobs/{id}/results.jsonl           results of a job that ended before per-chunk blobs (read, never written)
    jobs/{id}/output.jsonl            a batch's output file (its successful lines, OpenAI's format)
    jobs/{id}/errors.jsonl            a batch's error file (its failed lines)
    files/{file id}.jsonl             an uploaded file's content (``POST /v1/files``), kept as uploaded
    poison/{message id}.json          every poisoned message, kept verbatim

Table (``EMBEDDING_JOBS_TABLE``), one partition per job: ``PartitionKey = id`` with ``RowKey = "job"``
for the job (or batch) and ``RowKey = "chunk-{n:06d}"`` for each finished chunk; a file is one row,
``PartitionKey = file id``, ``RowKey = "file"``. Each owned job or batch also has one owner-index
row, ``PartitionKey = "owner-" + sha256(owner)[:32]``, ``RowKey = "{job|batch}-{inverted created_at
ms:013d}-{id}``, so one partition query lists an owner's jobs (or batches) newest first (``shared.jobs.listing``).
"""

from __future__ import annotations

import hashlib

JOB_ROW = "job"
CHUNK_ROW_PREFIX = "chunk-"
FILE_ROW = "file"
_CLOSED = ".closed.jsonl"
_RESULTS = "results"
OWNER_PARTITION_PREFIX = "owner-"
# Inverted creation times (ms) count down from here: 13 digits last until the year 2286.
_TIME_CEILING_MS = 10**13 - 1


def input_blob(job_id: str) -> str:
    return f"jobs/{job_id}/input.jsonl"


def chunk_blob(job_id: str, chunk: int) -> str:
    return f"jobs/{job_id}/chunks/{chunk:06d}.jsonl"


def partial_blob(job_id: str, chunk: int) -> str:
    """What a paused chunk already embedded (``shared.jobs.progress``)."""
    return f"jobs/{job_id}/chunks/{chunk:06d}.partial.jsonl"


def results_prefix(job_id: str) -> str:
    """Every results blob of a job starts with this; read them in name order (``chunk_of_results``)."""
    return f"jobs/{job_id}/{_RESULTS}/"


def legacy_results_blob(job_id: str) -> str:
    """The one results blob of a job that ended before results were kept per chunk.

    Still read (until retention deletes it), so results stay readable across the upgrade; never
    written. It shares the start of :func:`results_prefix`, so one listing finds either form.
    """
    return f"jobs/{job_id}/{_RESULTS}.jsonl"


def chunk_results_blob(job_id: str, chunk: int) -> str:
    """Chunk ``chunk``'s lines, written by the worker that embedded it (a redelivery rewrites the same)."""
    return f"{results_prefix(job_id)}{chunk:06d}.jsonl"


def closed_results_blob(job_id: str, chunk: int) -> str:
    """Chunk ``chunk``'s lines as its job's early end decided them (what it kept, errors for the rest).

    A name no worker writes, so a worker still running that chunk when the job ended cannot
    overwrite it; readers take it instead of :func:`chunk_results_blob`.
    """
    return f"{results_prefix(job_id)}{chunk:06d}{_CLOSED}"


def chunk_of_results(name: str) -> tuple[int, bool] | None:
    """(chunk number, written by the close?) for a results blob name; None for any other name."""
    base = name.rsplit("/", 1)[-1]
    closed = base.endswith(_CLOSED)
    stem = base[:-len(_CLOSED)] if closed else base.removesuffix(".jsonl")
    if stem == base or not stem.isdigit():
        return None
    return int(stem), closed


def batch_output_blob(batch_id: str) -> str:
    return f"jobs/{batch_id}/output.jsonl"


def batch_errors_blob(batch_id: str) -> str:
    return f"jobs/{batch_id}/errors.jsonl"


def file_blob(file_id: str) -> str:
    return f"files/{file_id}.jsonl"


def poison_blob(message_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in message_id)[:200] or "unknown"
    return f"poison/{safe}.json"


def chunk_row(chunk: int) -> str:
    return f"{CHUNK_ROW_PREFIX}{chunk:06d}"


def block_id(chunk: int, part: int) -> str:
    """A batch chunk's blocks of its output and error blobs (``shared.batch``).

    Deterministic, fixed-length block ids: re-staging after a redelivery replaces, never adds.
    """
    return f"c{chunk:06d}p{part:05d}"


def closing_block_id(chunk: int, part: int) -> str:
    """A batch's blocks of a chunk that had not finished when the batch ended (kept lines, error lines).

    Same length as :func:`block_id` (a blob's block ids must all be), different first letter, so a
    worker still running that chunk cannot overwrite what the ended batch committed.
    """
    return f"e{chunk:06d}p{part:05d}"


def owner_partition(owner: str) -> str:
    """The owner index's partition: a digest, so no caller identity is spelled in a key."""
    return OWNER_PARTITION_PREFIX + hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def owner_index_prefix(kind: str) -> str:
    """Where one kind's rows (``"job"`` or ``"batch"``) start in an owner's partition."""
    return f"{kind}-"


def owner_index_row(kind: str, created_at: float, job_id: str) -> str:
    """An owner-index RowKey: newest first in key order (time inverted, zero-padded), the id breaking ties."""
    inverted = _TIME_CEILING_MS - round(float(created_at) * 1000)
    return f"{owner_index_prefix(kind)}{inverted:013d}-{job_id}"
