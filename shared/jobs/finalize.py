"""End a job: once every chunk is recorded (succeeded), or early (cancelled, failed) with what it finished.

A job ends once: :func:`finalize` claims the ending on the row first (``ending``, conditional on
the row's ETag) and :func:`close_incomplete` ends the job only while no such claim exists, so a
close and a finalize that race never both end it. Safe to call any number of times from any
instance: the status change is conditional, so the job ends once, and never after it was marked
failed.

A succeeded job's results are already written: every chunk's blob exists before its row
(``shared.jobs.worker``). A job closed early gets a ``.closed.jsonl`` blob for each chunk not
recorded at the close, a name no worker writes, so a chunk a worker finishes later cannot change
what the ended job's results say.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.jobs import blobs, layout, progress, retention
from shared.jobs.embed import Outcome
from shared.jobs.packing import Item
from shared.jobs.results import write_chunk
from shared.jobs.runtime import Runtime
from shared.jobs.store import (
    BATCH_KIND,
    ENDING_FIELD,
    KIND_FIELD,
    PARTIAL_RESULTS_FIELD,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    clip,
    ending_is,
    int64,
    now,
)

logger = logging.getLogger("gateway.jobs")


async def finalize(rt: Runtime, job_id: str) -> bool:
    """True when this call ended the job."""
    state = await rt.store.load(job_id)
    if state is not None and state.row.get(KIND_FIELD) == BATCH_KIND:
        from shared.batch.finish import finalize_batch  # the batch modules build on this one

        return await finalize_batch(rt, job_id)
    if state is None or state.status in TERMINAL or not state.all_chunks_done():
        return False
    if (stray := state.stray_chunks()) is not None:
        logger.error("job %s has chunk rows %s for %s planned chunks", job_id, stray[:20], state.planned_chunks)
        return False
    if state.row.get(ENDING_FIELD) != SUCCEEDED and not await rt.store.transition(
            job_id, {ENDING_FIELD: SUCCEEDED}, only_from=frozenset({RUNNING}), when=ending_is(SUCCEEDED)):
        return False  # closed meanwhile (cancel, time budget): the close writes the rest of the results
    embedded, failed, tokens = state.totals()
    completed_at = now()
    ended = await rt.store.transition(job_id, {
        "status": SUCCEEDED, "completed_at": completed_at, "embedded": embedded, "failed": failed,
        "tokens": int64(tokens), **retention.end_fields(completed_at),
    }, only_from=frozenset({RUNNING}), when=ending_is(SUCCEEDED))
    if ended:
        logger.info(json.dumps({"event": "job_succeeded", "job_id": job_id, "embedded": embedded,
                                "failed": failed, "tokens": tokens}))
    return ended


async def close_incomplete(rt: Runtime, job_id: str, *, status: str, code: str, message: str,
                           **extra: Any) -> bool:
    """End a job that will not finish (time budget spent, cancelled), keeping every line it did finish.

    What it keeps is read once, up front: the chunks recorded by then, and for each other chunk what
    it kept before a pause (``shared.jobs.progress``). The status then changes together with the
    totals that makes (one conditional write, refused while :func:`finalize` holds the ending), so no
    worker starts another chunk, the job can no longer succeed, and a chunk a running worker records
    later counts nowhere: the job's counts are what its results say from the moment it ended. Last,
    each chunk not recorded gets its ``.closed.jsonl`` blob: what it kept, and an error line
    (``code``) for every other input. True when this call ended the job.
    """
    state = await rt.store.load(job_id)
    if state is None or state.status in TERMINAL:
        return False
    if state.row.get(KIND_FIELD) == BATCH_KIND:
        # A batch ends with its output and error files, and its own statuses (``shared.batch.finish``).
        from shared.batch.finish import close_batch

        return await close_batch(rt, job_id, (code, message), **extra)
    completed_at = now()
    fields: dict[str, Any] = {"status": status, "error_code": code, "error": clip(message),
                              "completed_at": completed_at, **retention.end_fields(completed_at), **extra}
    planned = state.planned_chunks
    if planned is None or not state.row.get("enqueued"):
        # Not planned yet: no inputs were read, there is nothing to keep.
        return await rt.store.transition(job_id, fields, when=ending_is(None))
    done = {c.chunk: c for c in state.chunks}
    kept = {chunk: await progress.load(rt, job_id, chunk) for chunk in range(planned) if chunk not in done}
    embedded = sum(c.embedded for c in done.values()) + sum(len(k.vectors) for k in kept.values())
    tokens = sum(c.tokens for c in done.values()) + sum(k.tokens for k in kept.values())
    failed = int(getattr(state.row.get("total"), "value", state.row.get("total")) or 0) - embedded
    fields.update(embedded=embedded, failed=failed, tokens=int64(tokens))
    if not await rt.store.transition(job_id, fields, when=ending_is(None)):
        return False
    await _write_closed_chunks(rt, job_id, kept, code, message)
    await rt.store.merge(job_id, {PARTIAL_RESULTS_FIELD: True})
    logger.info(json.dumps({"event": f"job_{status}", "job_id": job_id, "embedded": embedded, "failed": failed,
                            "code": code}))
    return True


async def _write_closed_chunks(rt: Runtime, job_id: str, kept: dict[int, Outcome], code: str, message: str) -> None:
    """Each unrecorded chunk's results as the close decided them: what it kept, an error line for the rest.

    Recorded chunks need nothing: their blob was written before their row.
    """
    for chunk, outcome in sorted(kept.items()):
        source = blobs.blob_client(rt.storage, rt.container, layout.chunk_blob(job_id, chunk))
        items = [Item.from_line(json.loads(line)) async for line in blobs.iter_lines(source)]
        for item in items:
            if item.index in outcome.refused:
                item.text = None
                item.error_code, item.error_message = outcome.refused[item.index]
            elif item.index not in outcome.vectors and item.text is not None:
                item.text = None
                item.error_code, item.error_message = code, message
        await write_chunk(blobs.blob_client(rt.storage, rt.container, layout.closed_results_blob(job_id, chunk)),
                          items, outcome.vectors)
