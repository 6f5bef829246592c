"""How long job, batch and file data are kept: one rule, decided from the stored row alone.

Every reader (the jobs, batches and files services) and the sweeper that deletes expired data
(:mod:`shared.jobs.sweeper`) ask :func:`is_expired`, so an object stops being served at the moment
it becomes deletable, and a caller can never read half-deleted data: past its expiry, status,
results, content and lists answer exactly as for an id that never existed.

* **A job or batch** (``RowKey = "job"``) is kept while it runs, whatever its age. Once it has ended
  it is kept until ``retain_until`` (:data:`RETAIN_UNTIL_FIELD`), stamped when it ends (end time +
  ``DATA_RETENTION_DAYS``, :func:`end_fields`); a row that ended without one (ended by code that
  does not stamp it, or before this rule existed) is kept until its end time + the retention.
  Not ``expires_at``: on a batch row that is the completion window (OpenAI's ``Batch.expires_at``).
* **A file** (``RowKey = "file"``) is kept until its own ``expires_at`` (OpenAI's ``expires_after``),
  else until ``created_at`` + the retention. A batch's output and error files are created as the
  batch ends, so without an ``output_expires_after`` of their own they expire with their batch.
* A row with no time to judge by is kept: nothing is deleted on a guess (the storage lifecycle
  policy is the backstop for blobs).

Timestamps are unix seconds stored as doubles (``store.now()``), which the sweeper's table queries
compare against.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from shared.jobs import layout
from shared.jobs.store import TERMINAL

RETAIN_UNTIL_FIELD = "retain_until"
# When a job or batch ended, in the order they are trusted: every ending sets completed_at today;
# the batch engine also records the specific moment (failed_at, cancelled_at, expired_at).
END_FIELDS = ("completed_at", "failed_at", "cancelled_at", "expired_at")
FILE_EXPIRES_FIELD = "expires_at"
SECONDS_PER_DAY = 86400


def retention_seconds() -> float:
    """``DATA_RETENTION_DAYS`` in seconds."""
    from shared.config import get_settings

    return get_settings().data_retention_seconds


def _seconds(value: Any) -> float | None:
    """A stored timestamp as a float (Int64 comes back wrapped); None when absent or not a number."""
    value = getattr(value, "value", value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def end_fields(ended_at: float, retention: float | None = None) -> dict[str, float]:
    """The field to merge into a job or batch row as it ends: when its data stops being kept."""
    keep = retention_seconds() if retention is None else retention
    return {RETAIN_UNTIL_FIELD: round(ended_at + keep, 3)}


def ended_at(row: Mapping[str, Any]) -> float | None:
    for name in END_FIELDS:
        moment = _seconds(row.get(name))
        if moment is not None:
            return moment
    return None


def job_expires_at(row: Mapping[str, Any], retention: float | None = None) -> float | None:
    """When a job or batch row's data stop being kept; None while it runs (kept, whatever its age)."""
    if str(row.get("status", "")) not in TERMINAL:
        return None
    stored = _seconds(row.get(RETAIN_UNTIL_FIELD))
    if stored is not None:
        return stored
    ended = ended_at(row)
    if ended is None:
        return None
    return ended + (retention_seconds() if retention is None else retention)


def file_expires_at(row: Mapping[str, Any], retention: float | None = None) -> float | None:
    """When a file row's content stops being kept: its own ``expires_at``, else created + retention."""
    own = _seconds(row.get(FILE_EXPIRES_FIELD))
    if own is not None:
        return own
    created = _seconds(row.get("created_at"))
    if created is None:
        return None
    return created + (retention_seconds() if retention is None else retention)


def expires_at(row: Mapping[str, Any], retention: float | None = None) -> float | None:
    """When the row's data stop being kept (file or job/batch rule by its RowKey); None: kept."""
    if row.get("RowKey") == layout.FILE_ROW:
        return file_expires_at(row, retention)
    return job_expires_at(row, retention)


def is_expired(row: Mapping[str, Any], now: float | None = None, *, retention: float | None = None) -> bool:
    """True once the row's data are no longer kept: answer 404, leave out of lists, delete.

    ``row`` is a job, batch or file row as read from the table (its ``RowKey`` says which; a row
    without one is judged as a job). ``now`` defaults to the clock.
    """
    deadline = expires_at(row, retention)
    return deadline is not None and (time.time() if now is None else now) >= deadline


__all__ = ["RETAIN_UNTIL_FIELD", "end_fields", "expires_at", "file_expires_at", "is_expired", "job_expires_at",
           "retention_seconds"]
