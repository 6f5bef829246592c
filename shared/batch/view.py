"""A batch as OpenAI's Batch object (``openai.types.Batch``), read from its row and chunk rows.

The engine keeps a batch in the embedding-job row vocabulary (``shared.jobs.store``): ``queued``,
``running``, ``cancelling`` and the terminal statuses. Callers see OpenAI's statuses, derived here
and nowhere else:

========================================  ===============
row                                       caller sees
========================================  ===============
queued, or running before it is planned   ``validating``
running, planned (``enqueued``)           ``in_progress``
running, every chunk done (or flagged)    ``finalizing``
cancelling                                ``cancelling``
succeeded / failed / cancelled / expired  ``completed`` / ``failed`` / ``cancelled`` / ``expired``
========================================  ===============

Timestamps are whole unix seconds, as in OpenAI's object. A row's ``completed_at`` is also what
``JobStore.fail`` stamps on any ending, so each ending's own ``*_at`` falls back to it only for that
ending.
"""

from __future__ import annotations

import json
from typing import Any

from shared.jobs.store import (
    CANCELLED,
    CANCELLING,
    EXPIRED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    JobState,
)

_ENDED = {SUCCEEDED: "completed", FAILED: "failed", CANCELLED: "cancelled", EXPIRED: "expired"}
# The row field stamped when each ending happened, by row status.
_ENDED_AT = {SUCCEEDED: "completed_at", FAILED: "failed_at", CANCELLED: "cancelled_at", EXPIRED: "expired_at"}


def status(state: JobState) -> str:
    """OpenAI's status for the batch (see the module docstring for the mapping)."""
    row_status = state.status
    if row_status in _ENDED:
        return _ENDED[row_status]
    if row_status == CANCELLING:
        return "cancelling"
    if row_status == RUNNING and state.row.get("enqueued"):
        return "finalizing" if state.row.get("finalizing_at") or state.all_chunks_done() else "in_progress"
    return "validating"  # queued, or running but not planned yet


def _seconds(value: Any) -> int | None:
    return None if value is None else int(float(getattr(value, "value", value)))


def _int(value: Any) -> int:
    return 0 if value is None else int(getattr(value, "value", value))


def _ended_at(state: JobState, field: str) -> int | None:
    """The row's stamp for this ending, or its ``completed_at`` when the batch did end this way."""
    own = state.row.get(field)
    if own is not None:
        return _seconds(own)
    if _ENDED_AT.get(state.status) == field:
        return _seconds(state.row.get("completed_at"))
    return None


def errors(state: JobState) -> dict[str, Any] | None:
    """Why a batch failed as a whole (a bad input file, a failure of the engine), in OpenAI's list shape.

    ``errors`` on the row is the validation's list of ``{code, message, param, line}``; a batch that
    failed for another reason gets one entry from its ``error_code``/``error``.
    """
    raw = state.row.get("errors")
    items: list[dict[str, Any]] = []
    if isinstance(raw, str) and raw:
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = []
        items = [{"code": e.get("code"), "message": e.get("message"), "param": e.get("param"),
                  "line": e.get("line")} for e in decoded if isinstance(e, dict)] if isinstance(decoded, list) else []
    if not items and state.status == FAILED:
        items = [{"code": state.row.get("error_code"), "message": state.row.get("error"), "param": None,
                  "line": None}]
    return {"object": "list", "data": items} if items else None


def usage(state: JobState) -> dict[str, Any]:
    """Tokens used so far (the chunk rows' while it runs, the row's once ended), input and output apart.

    Output tokens are what the upstream generated (chat ``completion_tokens``, Responses
    ``output_tokens``; none for embeddings); the rest of the tokens are input.
    """
    row = state.row
    _, _, total = state.totals()
    output_tokens = min(state.output_tokens(), total)
    input_tokens = total - output_tokens
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": _int(row.get("cached_tokens"))},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": _int(row.get("reasoning_tokens"))},
            "total_tokens": total}


def batch_view(batch_id: str, state: JobState) -> dict[str, Any]:
    """The Batch object, every field of OpenAI's in OpenAI's order; counts live while it runs."""
    row = state.row
    completed, failed, _ = state.totals()
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": row.get("endpoint"),
        "model": row.get("model"),
        "errors": errors(state),
        "input_file_id": row.get("input_file_id"),
        "completion_window": row.get("completion_window", "24h"),
        "status": status(state),
        "output_file_id": row.get("output_file_id"),
        "error_file_id": row.get("error_file_id"),
        "created_at": _seconds(row.get("created_at")),
        "in_progress_at": _seconds(row.get("in_progress_at")),
        "expires_at": _seconds(row.get("expires_at")),
        "finalizing_at": _seconds(row.get("finalizing_at")),
        "completed_at": _ended_at(state, "completed_at") if state.status == SUCCEEDED else None,
        "failed_at": _ended_at(state, "failed_at"),
        "expired_at": _ended_at(state, "expired_at"),
        "cancelling_at": _seconds(row.get("cancelling_at")),
        "cancelled_at": _ended_at(state, "cancelled_at"),
        "request_counts": {"total": _int(row.get("total")), "completed": completed, "failed": failed},
        "usage": usage(state),
        "metadata": state.metadata(),
    }


__all__ = ["batch_view", "errors", "status", "usage"]
