"""Where a job's pieces live in storage; the one place that spells blob names and table keys.

Blobs (container ``EMBEDDING_JOBS_CONTAINER``)::

    jobs/{id}/input.jsonl             inputs of an HTTP job too large for a queue message
    jobs/{id}/chunks/{n:06d}.jsonl    normalised inputs of chunk n (written by the planner)
    jobs/{id}/chunks/{n:06d}.partial.jsonl  what a paused chunk already embedded (until it is done)
    jobs/{id}/results.jsonl           results, one line per input in input order (committed at the end)
    jobs/{id}/output.jsonl            a batch's output file (its successful lines, OpenAI's format)
    jobs/{id}/errors.jsonl            a batch's error file (its failed lines)
    files/{file id}.jsonl             an uploaded file's content (``POST /v1/files``), kept as uploaded
    poison/{message id}.json          every poisoned message, kept verbatim

Table (``EMBEDDING_JOBS_TABLE``), one partition per job: ``PartitionKey = id`` with ``RowKey = "job"``
for the job (or batch) and ``RowKey = "chunk-{n:06d}"`` for each finished chunk; a file is one row,
``PartitionKey = file id``, ``RowKey = "file"``.
"""

from __future__ import annotations

JOB_ROW = "job"
CHUNK_ROW_PREFIX = "chunk-"
FILE_ROW = "file"


def input_blob(job_id: str) -> str:
    return f"jobs/{job_id}/input.jsonl"


def chunk_blob(job_id: str, chunk: int) -> str:
    return f"jobs/{job_id}/chunks/{chunk:06d}.jsonl"


def partial_blob(job_id: str, chunk: int) -> str:
    """What a paused chunk already embedded (``shared.jobs.progress``)."""
    return f"jobs/{job_id}/chunks/{chunk:06d}.partial.jsonl"


def results_blob(job_id: str) -> str:
    return f"jobs/{job_id}/results.jsonl"


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
    """Deterministic, fixed-length block ids: re-staging after a redelivery replaces, never adds."""
    return f"c{chunk:06d}p{part:05d}"


def closing_block_id(chunk: int, part: int) -> str:
    """Blocks of a chunk that had not finished when its job ended (its kept vectors and error lines).

    Same length as :func:`block_id` (a blob's block ids must all be), different first letter, so a
    worker still running that chunk cannot overwrite what the ended job committed.
    """
    return f"e{chunk:06d}p{part:05d}"
