"""End a job once every chunk is recorded: commit the results blob in input order, then mark it succeeded.

Safe to call any number of times from any instance: committing the same block list gives the same
blob, and the status change is conditional (``running`` to ``succeeded`` on the row's ETag), so the
job ends once, and never after it was marked failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.jobs import blobs, layout, progress
from shared.jobs.packing import Item
from shared.jobs.results import iter_parts, parts_for
from shared.jobs.runtime import Runtime
from shared.jobs.store import PARTIAL_RESULTS_FIELD, RUNNING, SUCCEEDED, TERMINAL, clip, int64, now

logger = logging.getLogger("gateway.jobs")


async def finalize(rt: Runtime, job_id: str) -> bool:
    """True when this call ended the job."""
    state = await rt.store.load(job_id)
    if state is None or state.status in TERMINAL or not state.all_chunks_done():
        return False
    planned = state.planned_chunks or 0
    if [c.chunk for c in state.chunks] != list(range(planned)):
        logger.error("job %s has chunk rows %s for %d planned chunks", job_id,
                     [c.chunk for c in state.chunks][:20], planned)
        return False
    block_ids = [layout.block_id(c.chunk, part) for c in state.chunks for part in range(parts_for(c.count))]
    await blobs.commit_blocks(blobs.blob_client(rt.storage, rt.container, layout.results_blob(job_id)), block_ids)
    embedded, failed, tokens = state.totals()
    ended = await rt.store.transition(job_id, {
        "status": SUCCEEDED, "completed_at": now(), "embedded": embedded, "failed": failed, "tokens": int64(tokens),
    }, only_from=frozenset({RUNNING}))
    if ended:
        logger.info(json.dumps({"event": "job_succeeded", "job_id": job_id, "embedded": embedded,
                                "failed": failed, "tokens": tokens}))
    return ended


async def close_incomplete(rt: Runtime, job_id: str, *, status: str, code: str, message: str,
                           **extra: Any) -> bool:
    """End a job that will not finish (time budget spent, cancelled), keeping every line it did finish.

    The status changes first (so no worker starts another chunk and :func:`finalize` can no longer
    mark it succeeded); then the results blob is committed in input order from the finished chunks'
    blocks, and for each unfinished chunk from what it kept before a pause (``shared.jobs.progress``)
    plus an error line (``code``) for every other input. True when this call ended the job.
    """
    state = await rt.store.load(job_id)
    if state is None or state.status in TERMINAL:
        return False
    ended = await rt.store.transition(job_id, {"status": status, "error_code": code, "error": clip(message),
                                               "completed_at": now(), **extra})
    if not ended:
        return False
    planned = state.planned_chunks
    if planned is None or not state.row.get("enqueued"):
        return True  # not planned yet: no inputs were read, there is nothing to keep
    done = {c.chunk: c for c in (await rt.store.load(job_id) or state).chunks}
    results = blobs.blob_client(rt.storage, rt.container, layout.results_blob(job_id))
    block_ids: list[str] = []
    embedded = failed = tokens = 0
    for chunk in range(planned):
        finished = done.get(chunk)
        if finished is not None:
            block_ids += [layout.block_id(chunk, part) for part in range(parts_for(finished.count))]
            embedded, failed, tokens = (embedded + finished.embedded, failed + finished.failed,
                                        tokens + finished.tokens)
            continue
        kept = await progress.load(rt, job_id, chunk)
        source = blobs.blob_client(rt.storage, rt.container, layout.chunk_blob(job_id, chunk))
        items = [Item.from_line(json.loads(line)) async for line in blobs.iter_lines(source)]
        for item in items:
            if item.index in kept.refused:
                item.text = None
                item.error_code, item.error_message = kept.refused[item.index]
            elif item.index not in kept.vectors and item.text is not None:
                item.text = None
                item.error_code, item.error_message = code, message
        for part, data in iter_parts(items, kept.vectors):
            await blobs.stage_block(results, layout.closing_block_id(chunk, part), data)
            block_ids.append(layout.closing_block_id(chunk, part))
        embedded += len(kept.vectors)
        failed += len(items) - len(kept.vectors)
        tokens += kept.tokens
    await blobs.commit_blocks(results, block_ids)
    await rt.store.merge(job_id, {PARTIAL_RESULTS_FIELD: True, "embedded": embedded, "failed": failed,
                                  "tokens": int64(tokens)})
    logger.info(json.dumps({"event": f"job_{status}", "job_id": job_id, "embedded": embedded, "failed": failed,
                            "code": code}))
    return True
