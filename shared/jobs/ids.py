"""Ids of jobs, batches and files: opaque to callers, but checked strictly before they reach a table key or a blob name.

An embedding job is ``ejob_`` + 32 hex digits; a batch (the OpenAI Batch API on the same engine) is
``batch_`` + 32 hex digits, and the engine's messages accept either (:data:`PATTERN`). Files are
``file-`` + 32 hex digits, as OpenAI spells them. A batch's output and error files have ids derived
from the batch id (:func:`derived_file_id`), so finalizing twice creates the same two files, not four.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "ejob_"
BATCH_PREFIX = "batch_"
FILE_PREFIX = "file-"
EMBEDDING_JOB_PATTERN = r"^ejob_[0-9a-f]{32}$"
BATCH_PATTERN = r"^batch_[0-9a-f]{32}$"
FILE_PATTERN = r"^file-[0-9a-f]{32}$"
# What the engine's queue messages may name: an embedding job or a batch.
PATTERN = r"^(ejob|batch)_[0-9a-f]{32}$"
_JOB = re.compile(EMBEDDING_JOB_PATTERN)
_BATCH = re.compile(BATCH_PATTERN)
_FILE = re.compile(FILE_PATTERN)
_ANY = re.compile(PATTERN)


def new_job_id() -> str:
    return PREFIX + secrets.token_hex(16)


def new_batch_id() -> str:
    return BATCH_PREFIX + secrets.token_hex(16)


def new_file_id() -> str:
    return FILE_PREFIX + secrets.token_hex(16)


def derived_file_id(batch_id: str, role: str) -> str:
    """The id of a batch's ``"output"`` or ``"error"`` file: the same on every call for the same batch."""
    return FILE_PREFIX + hashlib.sha256(f"{batch_id}/{role}".encode()).hexdigest()[:32]


def is_job_id(value: object) -> bool:
    """An embedding job's id (the ``/embeddings/jobs`` routes answer only these)."""
    return isinstance(value, str) and _JOB.fullmatch(value) is not None


def is_batch_id(value: object) -> bool:
    return isinstance(value, str) and _BATCH.fullmatch(value) is not None


def is_file_id(value: object) -> bool:
    return isinstance(value, str) and _FILE.fullmatch(value) is not None


def is_engine_id(value: object) -> bool:
    """An id the engine's messages may name (an embedding job or a batch)."""
    return isinstance(value, str) and _ANY.fullmatch(value) is not None
