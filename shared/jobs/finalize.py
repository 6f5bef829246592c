"""End a job once every chunk is recorded: commit the results blob in input order, then mark it succeeded.

Safe to call any number of times from any instance: committing the same block list gives the same
blob, and the status change is conditional (``running`` to ``succeeded`` on the row's ETag), so the
job ends once, and never after it was marked failed.
"""

from __future__ import annotations

import json
import logging

from shared.jobs import blobs, layout
from shared.jobs.results import parts_for
from shared.jobs.runtime import Runtime
from shared.jobs.store import RUNNING, SUCCEEDED, TERMINAL, int64, now

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
