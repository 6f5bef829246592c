"""A batch's end: its output and error files committed in input order, recorded, and the row's final status.

* :func:`finalize_batch`, once every chunk row exists: commit both blobs from the chunks' blocks,
  record the output file (when a line succeeded) and the error file (when one failed) with ids
  derived from the batch id, then move the row ``running`` → ``succeeded`` with the file ids.
* :func:`close_batch`, for a batch that will not finish: a ``close`` message (cancel, or the
  service saw the window run out), a chunk past its ``deadline``, or a failure no retry can fix.
  Finished chunks keep their blocks; an unfinished one contributes what it kept before a pause
  (``shared.jobs.progress``) and an error line for every other line (``batch_cancelled``,
  ``batch_expired`` or ``batch_failed``), under closing block ids a late worker cannot overwrite.
  The status follows from the row: ``cancelling`` ends ``cancelled``; past ``expires_at`` (or out
  of retry time, which for a batch is its window) ``expired``; a failure ``failed``.

Each first claims the ending on the row (``ending``, a conditional write that only succeeds while no
other ending is claimed), so the files are written by one kind of ending only, and the totals the
row gets are the ones its files hold: a chunk a running worker records after the close's claim is in
neither (``request_counts`` come from the row once the batch ended). Then both write everything
before the status changes, and every write is idempotent (same blocks, same file ids, rows rewritten
whole), so a crash half-way is repaired by the next delivery, which finds the claim and completes it;
the status change itself is conditional (``store.transition``), so a batch ends once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from shared.batch import files
from shared.batch.assemble import read_chunk, records, stage
from shared.batch.output import PART_LINES, block_ids, not_run
from shared.batch.planned import PlannedLine
from shared.batch.planner import numbered_lines
from shared.jobs import access, blobs, layout, progress, retention
from shared.jobs.ids import derived_file_id
from shared.jobs.runtime import Runtime
from shared.jobs.store import (
    CANCELLED,
    CANCELLING,
    ENDING_FIELD,
    EXPIRED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    ChunkState,
    JobState,
    clip,
    ending_is,
    int64,
    now,
)

logger = logging.getLogger("gateway.batch")

OUTPUT_PURPOSE = "batch_output"
# Why a line never ran, by the batch's final status.
_NOT_RUN = {
    CANCELLED: ("batch_cancelled", "The batch was cancelled before this request ran."),
    EXPIRED: ("batch_expired", "The batch's completion window ended before this request ran."),
    FAILED: ("batch_failed", "The batch failed before this request ran."),
}
_ENDED_AT = {CANCELLED: "cancelled_at", EXPIRED: "expired_at", FAILED: "failed_at"}
# A chunk handed back for longer than the time left: for a batch, that time is its window.
_OUT_OF_TIME = "time_budget_exhausted"
# Statuses a close may end.
_OPEN = frozenset({QUEUED, RUNNING, CANCELLING})
# When the claim of a close was made; older than the Functions timeout (host.json ``functionTimeout``),
# the invocation that made it is gone, and another may complete that ending.
ENDING_AT_FIELD = "ending_at"
ENDING_CLAIM_SECONDS = 600.0
# Error-file parts of an unplanned batch staged concurrently (each PART_LINES lines).
_PARTS_AT_ONCE = 4


def _claimable(ending: str | None, claimed_at: Any) -> Callable[[Mapping[str, Any]], bool]:
    """The row is still as this call saw it: not being ended, or ended by the same stale claim."""

    def check(row: Mapping[str, Any]) -> bool:
        return (row.get(ENDING_FIELD) or None) == ending and row.get(ENDING_AT_FIELD) == claimed_at

    return check


async def finalize_batch(rt: Runtime, batch_id: str) -> bool:
    """True when this call ended the batch ``succeeded``.

    Claims the ending first (``ending``: succeeded), while running; once claimed, a cancel that
    arrives meanwhile (``cancelling``) is too late: every line ran, and the batch completes.
    """
    state = await rt.store.load(batch_id)
    if state is None or not state.all_chunks_done() or not (
            state.status == RUNNING or (state.status == CANCELLING and state.row.get(ENDING_FIELD) == SUCCEEDED)):
        return False
    if (stray := state.stray_chunks()) is not None:
        logger.error("batch %s has chunk rows %s for %s planned chunks", batch_id, stray[:20], state.planned_chunks)
        return False
    if state.row.get(ENDING_FIELD) != SUCCEEDED:
        claim = {ENDING_FIELD: SUCCEEDED, **({} if state.row.get("finalizing_at") else {"finalizing_at": now()})}
        if not await rt.store.transition(batch_id, claim, only_from=frozenset({RUNNING}), when=ending_is(SUCCEEDED)):
            return False  # a close claimed it first (cancel, window, failure): it writes the files
    output_ids = [b for c in state.chunks for b in block_ids(c.chunk, c.embedded, layout.block_id)]
    error_ids = [b for c in state.chunks for b in block_ids(c.chunk, c.failed, layout.block_id)]
    succeeded, failed, tokens = state.totals()
    fields = await _files(rt, batch_id, state.row, output_ids, error_ids, succeeded, failed)
    ended_at = now()
    ended = await rt.store.transition(batch_id, {
        "status": SUCCEEDED, "completed_at": ended_at, "embedded": succeeded, "failed": failed,
        "tokens": int64(tokens), "output_tokens": int64(state.output_tokens()), **retention.end_fields(ended_at),
        **fields}, only_from=frozenset({RUNNING, CANCELLING}), when=ending_is(SUCCEEDED))
    if ended:
        logger.info(json.dumps({"event": "batch_completed", "batch_id": batch_id, "completed": succeeded,
                                "failed": failed, "tokens": tokens}))
    return ended


def final_status(row: dict[str, Any], failure: tuple[str, str] | None) -> str | None:
    """How a batch that will not finish ends; None when nothing says it should end now."""
    if row.get("status") == CANCELLING:
        return CANCELLED
    expires = row.get("expires_at")
    if (expires is not None and time.time() >= float(expires)) or (failure and failure[0] == _OUT_OF_TIME):
        return EXPIRED
    return FAILED if failure is not None else None


async def close_batch(rt: Runtime, batch_id: str, failure: tuple[str, str] | None = None, **extra: Any) -> bool:
    """End a batch that will not finish, keeping every line it finished; True when this call ended it.

    ``failure`` (code, message) is why it must end now, when it is not being cancelled or past its
    window; without one (a ``close`` message, a chunk past its deadline) a batch that is neither is
    left running. One call at a time closes a batch: it claims the ending (and the time) on the row;
    another call leaves a claim alone until it is older than any invocation can run
    (:data:`ENDING_CLAIM_SECONDS`), then completes that ending (a close that crashed half-way). A
    batch being finalized is finalized.
    """
    state = await rt.store.load(batch_id)
    if state is None or state.status in TERMINAL:
        return False
    ending = state.row.get(ENDING_FIELD) or None
    if ending == SUCCEEDED or (ending is None and failure is None and state.status == RUNNING
                               and state.all_chunks_done()):
        return await finalize_batch(rt, batch_id)  # every line ran: it completed, whatever the clock says
    status = ending or final_status(state.row, failure)
    if status is None:
        return False
    claimed_at = state.row.get(ENDING_AT_FIELD)
    if ending is not None and now() - float(getattr(claimed_at, "value", claimed_at) or 0) < ENDING_CLAIM_SECONDS:
        return False  # another invocation is closing it right now: it alone writes the files
    claim: dict[str, Any] = {ENDING_FIELD: status, ENDING_AT_FIELD: now()}
    if failure is not None and status == FAILED and ending is None:
        claim.update(error_code=failure[0], error=clip(failure[1]))
    if not await rt.store.transition(batch_id, claim, only_from=_OPEN, when=_claimable(ending, claimed_at)):
        return False  # ended, or claimed by another call, meanwhile
    # The chunks done as of the claim are the ones kept whole; one a running worker records from now
    # on is closed like any unfinished chunk (and finalize_batch can no longer claim the batch).
    state = await rt.store.load(batch_id) or state
    ended_at = now()
    # completed_at too: every ending stamps it (``shared.jobs.retention`` keeps data from then on).
    fields: dict[str, Any] = {"status": status, "completed_at": ended_at, _ENDED_AT[status]: ended_at,
                              **retention.end_fields(ended_at), **extra}
    if state.planned_chunks is not None and state.row.get("enqueued"):
        fields.update(await _close_files(rt, batch_id, state, status))
    elif status in (CANCELLED, EXPIRED):
        fields.update(await _close_unplanned(rt, batch_id, state.row, status))
    ended = await rt.store.transition(batch_id, fields, only_from=_OPEN, when=ending_is(status))
    if ended:
        logger.info(json.dumps({"event": f"batch_{status}", "batch_id": batch_id,
                                "completed": fields.get("embedded"), "failed": fields.get("failed")}))
    return ended


async def _close_files(rt: Runtime, batch_id: str, state: JobState, status: str) -> dict[str, Any]:
    """Stage what every unfinished chunk kept, commit both blobs, record the files; the row's new fields."""
    done = {c.chunk: c for c in state.chunks}
    output_ids: list[str] = []
    error_ids: list[str] = []
    succeeded = failed = tokens = generated = 0
    for chunk in range(state.planned_chunks or 0):
        finished = done.get(chunk)
        if finished is None:
            lines = await read_chunk(rt, batch_id, chunk)
            kept = await progress.load(rt, batch_id, chunk)
            tagged = records(batch_id, chunk, lines, kept, str(state.row.get("deployment")), _NOT_RUN[status])
            kept_lines, not_run = await stage(rt, batch_id, chunk, tagged, layout.closing_block_id)
            finished = ChunkState(chunk, len(lines), kept_lines, not_run, kept.tokens, kept.output_tokens)
            make = layout.closing_block_id
        else:
            make = layout.block_id
        output_ids += block_ids(chunk, finished.embedded, make)
        error_ids += block_ids(chunk, finished.failed, make)
        succeeded, failed, tokens = succeeded + finished.embedded, failed + finished.failed, tokens + finished.tokens
        generated += finished.output_tokens
    fields = await _files(rt, batch_id, state.row, output_ids, error_ids, succeeded, failed)
    return {**fields, "embedded": succeeded, "failed": failed, "tokens": int64(tokens),
            "output_tokens": int64(generated)}


async def _close_unplanned(rt: Runtime, batch_id: str, row: dict[str, Any], status: str) -> dict[str, Any]:
    """A batch cancelled or expired before it was planned: every line of its input is an error line.

    So that every ``custom_id`` is accounted for, however early the batch ended (one that failed
    validation has none: its ``errors`` say why, as OpenAI's do). The input was checked at upload,
    so a line's ``custom_id`` is read without judging the rest again. The input streams through:
    error lines are staged a part (``PART_LINES``) at a time, a few parts at once, so memory stays
    flat however long the file; the block ids are those :func:`block_ids` names for the count.
    """
    code, message = _NOT_RUN[status]
    waiting: list[Coroutine[Any, Any, tuple[int, int]]] = []
    part: list[bytes] = []
    failed = parts = 0

    def staged(records: list[bytes], number: int) -> Coroutine[Any, Any, tuple[int, int]]:
        """One part, as the error blob's block ``closing_block_id(0, number)``."""
        return stage(rt, batch_id, 0, records, lambda _chunk, _part: layout.closing_block_id(0, number))

    try:
        async for _, raw in numbered_lines(rt, str(row["input_file_id"])):
            part.append(not_run(batch_id, PlannedLine(failed, str(json.loads(raw)["custom_id"])), code, message))
            failed += 1
            if len(part) == PART_LINES:
                waiting.append(staged(part, parts))
                part, parts = [], parts + 1
            if len(waiting) == _PARTS_AT_ONCE:
                started, waiting = waiting, []
                await asyncio.gather(*started)
    except BaseException as exc:
        for coroutine in waiting:  # parts never started: the read stopped
            coroutine.close()
        if isinstance(exc, blobs.BlobMissing):  # the input file was deleted meanwhile: nothing to account for
            return {}
        raise
    if part:
        waiting.append(staged(part, parts))
    await asyncio.gather(*waiting)
    fields = await _files(rt, batch_id, row, [], block_ids(0, failed, layout.closing_block_id), 0, failed)
    return {**fields, "embedded": 0, "failed": failed, "tokens": int64(0)}


async def _files(rt: Runtime, batch_id: str, row: dict[str, Any], output_ids: list[str], error_ids: list[str],
                 succeeded: int, failed: int) -> dict[str, Any]:
    """Commit the output blob (when a line succeeded) and the error blob (when one failed); record both files."""
    fields: dict[str, Any] = {}
    for role, name, ids, count, field in (("output", layout.batch_output_blob(batch_id), output_ids, succeeded,
                                           "output_file_id"),
                                          ("error", layout.batch_errors_blob(batch_id), error_ids, failed,
                                           "error_file_id")):
        if count == 0:
            continue
        blob = blobs.blob_client(rt.storage, rt.container, name)
        await blobs.commit_blocks(blob, ids)
        size = (await blob.get_blob_properties()).size
        file_id = derived_file_id(batch_id, role)
        created = now()
        after = getattr(row.get("output_expires_after"), "value", row.get("output_expires_after"))
        await files.record_file(rt, file_id, owner=access.payer(row), purpose=OUTPUT_PURPOSE,
                                filename=f"{batch_id}_{role}.jsonl", size=int(size), lines=count, blob=name,
                                created_at=created,
                                expires_at=None if after is None else round(created + float(after), 3))
        fields[field] = file_id
    return fields
