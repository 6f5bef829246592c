"""A ``chunk`` message: embed one planned request's inputs and write them as the chunk's results blob.

Order of effects, chosen so that a crash or redelivery at any point is harmless:

0. refuse the message unless it carries its job's token (``shared.jobs.proof``);
1. skip if the chunk row exists (done before) or the job has ended;
2. reserve the chunk's tokens in the job owner's budget (``shared.jobs.charge``: over budget, the
   chunk goes back to the queue), embed (the only expensive, non-idempotent step, and the only one
   repeated after a crash), and settle the reservation with the tokens the upstream reported;
   stopped part-way (throttled for long, an outage), keep what was embedded (``shared.jobs.progress``)
   before the message goes back to the queue: the next delivery sends only the rest;
3. write the chunk's results blob whole (``results.write_chunk``: its parts staged under
   deterministic ids, then committed; a redelivery writes the same blob again), readable from then
   on, also while the job runs;
4. write the chunk row (insert-or-replace, same values): a chunk row always has its blob;
5. try to finalize: whoever sees every chunk row ends the job (succeeded).

A worker that started before its job ended early still writes its blob, under the worker's name;
the close wrote that chunk's ``.closed.jsonl`` blob, which readers take instead, so what the
ended job's results say never changes.
"""

from __future__ import annotations

import json
import logging

from shared import tokens
from shared.batch.worker import run_batch_chunk
from shared.jobs import access, blobs, charge, layout, progress, proof
from shared.jobs.embed import Outcome, embed
from shared.jobs.finalize import finalize
from shared.jobs.messages import ChunkMessage
from shared.jobs.pacer import Pacer, Throttled
from shared.jobs.packing import Item
from shared.jobs.results import write_chunk
from shared.jobs.runtime import Runtime
from shared.jobs.store import BATCH_KIND, KIND_FIELD, TERMINAL, ChunkState, JobState

logger = logging.getLogger("gateway.jobs")


async def run_chunk(rt: Runtime, message: ChunkMessage, pacer: Pacer) -> None:
    job_id = message.id
    row = await rt.store.get_row(job_id)
    if row is None:
        raise proof.Unproven(f"chunk {message.chunk} names {job_id}, which has no job row")
    if not proof.proves(row, message.token):
        raise proof.Unproven(f"chunk {message.chunk} does not carry the token of {job_id}")
    if row.get(KIND_FIELD) == BATCH_KIND:  # a Batch API chunk: same message, its own lines and output
        await run_batch_chunk(rt, message, row, pacer)
        return
    if await rt.store.chunk_done(job_id, message.chunk):
        # A redelivery, or a worker that died between recording and finalizing: finalize is idempotent.
        await finalize(rt, job_id)
        return
    if JobState(row).status in TERMINAL:
        return
    source = blobs.blob_client(rt.storage, rt.container, layout.chunk_blob(job_id, message.chunk))
    items = [Item.from_line(json.loads(line)) async for line in blobs.iter_lines(source)]
    if len(items) != message.count or (items and items[0].index != message.start):
        raise RuntimeError(f"chunk {message.chunk} of {job_id} holds {len(items)} inputs, expected {message.count}")

    # What earlier deliveries already embedded (before a pause) is kept and not sent again.
    outcome = await progress.load(rt, job_id, message.chunk)
    for item in items:
        if item.index in outcome.refused:
            item.text = None
            item.error_code, item.error_message = outcome.refused[item.index]
    sendable = [item for item in items if item.text is not None and item.index not in outcome.vectors]
    hold = charge.reserve(access.payer(row), sum(tokens.estimate(item.text or "") for item in sendable))
    fresh = Outcome({}, 0)
    try:
        if sendable:
            await embed(sendable, message.model, message.dimensions, pacer, fresh)
    except BaseException as exc:
        # Stopped part-way (a long throttle, an outage): what came back is paid for; keep it.
        charge.settle(hold, fresh.tokens)
        if fresh.vectors or fresh.refused:
            outcome.absorb(fresh)
            await progress.save(rt, job_id, message.chunk, outcome)
            if isinstance(exc, Throttled):
                exc.progressed = True
        raise
    charge.settle(hold, fresh.tokens)
    outcome.absorb(fresh)

    results = blobs.blob_client(rt.storage, rt.container, layout.chunk_results_blob(job_id, message.chunk))
    await write_chunk(results, items, outcome.vectors)
    embedded = len(outcome.vectors)
    await rt.store.record_chunk(job_id, ChunkState(chunk=message.chunk, count=len(items), embedded=embedded,
                                                   failed=len(items) - embedded, tokens=outcome.tokens))
    await progress.discard(rt, job_id, message.chunk)
    await finalize(rt, job_id)
