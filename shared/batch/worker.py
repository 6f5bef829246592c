"""A ``chunk`` message of a batch: run its lines, stage their output and error records, record the chunk.

Called by ``shared.jobs.worker.run_chunk`` once the message has proved its batch (same token, same
queue, same hand-back and retry rules as an embedding job's chunk). Order of effects, so that a
crash or a redelivery at any point is harmless:

1. skip when the chunk row exists (then only try to finalize), or the batch is ``cancelling`` or
   has ended; close the batch as expired when the message's ``deadline`` (the batch's
   ``expires_at``) has passed;
2. run what earlier deliveries did not finish (``shared.jobs.progress`` keeps each finished input's
   vector and each finished line's record): packed embeddings lines through ``shared.jobs.embed``,
   one call per ``dimensions`` group (it splits, paces, isolates refused inputs); other lines one
   request each (``shared.batch.requests``), at most ``LINES_AT_ONCE`` per deployment at a time,
   new ones only for :data:`START_LINES_FOR_SECONDS`. Stopped part-way (a long throttle, an outage,
   its turn used), it saves what finished before the message goes back to the queue, so no line
   is sent twice and none is written twice;
3. stage the two blobs' blocks under deterministic ids, write the chunk row, drop the progress,
   and try to finalize (``shared.batch.finish``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from typing import Any

from shared import tokens
from shared.batch import finish, output
from shared.batch.assemble import read_chunk, records, stage
from shared.batch.planned import PlannedLine, ordinals, whole_line_key
from shared.batch.requests import line_slots, send_line
from shared.jobs import access, charge, progress
from shared.jobs.embed import JobFailed, Outcome, embed
from shared.jobs.messages import ChunkMessage
from shared.jobs.pacer import Pacer, Throttled
from shared.jobs.packing import Item
from shared.jobs.runtime import Runtime
from shared.jobs.store import CANCELLING, ENDING_FIELD, TERMINAL, ChunkState

logger = logging.getLogger("gateway.batch")

# A chunk starts new lines for this long, then hands the rest back (``TurnOver``): with the slots
# shared by every chunk of the instance, and a line allowed 120 s, an invocation stays well inside
# the Functions timeout (10 minutes) however slow the model or busy the instance.
START_LINES_FOR_SECONDS = 240.0


# While lines finish, what is done is saved at most this often (``_Checkpoint``).
CHECKPOINT_SECONDS = 20.0


class TurnOver(Throttled):
    """The chunk used its turn: what it finished is kept, and it goes back to the queue at once for the rest."""

    def __init__(self) -> None:
        super().__init__(0.0)


_PATHS = {"/v1/embeddings": "/embeddings", "/v1/chat/completions": "/chat/completions",
          "/v1/responses": "/responses"}


async def run_batch_chunk(rt: Runtime, message: ChunkMessage, row: dict[str, Any], pacer: Pacer) -> None:
    batch_id, chunk = message.id, message.chunk
    if await rt.store.chunk_done(batch_id, chunk):
        await finish.finalize_batch(rt, batch_id)  # a redelivery, or a worker that died before finalizing
        return
    if row.get("status") in TERMINAL or row.get("status") == CANCELLING:
        return  # the close writes what this chunk kept
    if row.get(ENDING_FIELD) or (message.deadline is not None and time.time() >= message.deadline):
        # Being ended (no new work starts; a stale close is completed), or past its window: closed.
        await finish.close_batch(rt, batch_id)
        return
    lines = await read_chunk(rt, batch_id, chunk)
    if len(lines) != message.count or (lines and lines[0].line != message.start):
        raise RuntimeError(f"chunk {chunk} of {batch_id} holds {len(lines)} lines, expected {message.count}")
    kept = await progress.load(rt, batch_id, chunk)
    await _run(rt, message, row, lines, kept, pacer)
    succeeded, failed = await stage(rt, batch_id, chunk, records(batch_id, chunk, lines, kept, message.model))
    await rt.store.record_chunk(batch_id, ChunkState(chunk=chunk, count=len(lines), embedded=succeeded,
                                                     failed=failed, tokens=kept.tokens,
                                                     output_tokens=kept.output_tokens))
    await progress.discard(rt, batch_id, chunk)
    await finish.finalize_batch(rt, batch_id)


async def _run(rt: Runtime, message: ChunkMessage, row: dict[str, Any], lines: list[PlannedLine],
               kept: Outcome, pacer: Pacer) -> None:
    """Bring ``kept`` to an answer for every line; on the way out by an exception, save what finished."""
    fresh = Outcome({}, 0)
    try:
        await _embed_packed(message, row, lines, kept, fresh, pacer)
        await _send_each(rt, message, row, lines, kept, fresh, pacer)
    except BaseException as exc:
        if fresh.vectors or fresh.refused:
            kept.absorb(fresh)
            await progress.save(rt, message.id, message.chunk, kept)
            if isinstance(exc, Throttled):
                exc.progressed = True  # a pause that kept work is progress, not a failed try
        raise
    kept.absorb(fresh)


async def _embed_packed(message: ChunkMessage, row: dict[str, Any], lines: list[PlannedLine], kept: Outcome,
                        fresh: Outcome, pacer: Pacer) -> None:
    """The packed embeddings lines' inputs, one upstream call per ``dimensions`` (``embed`` splits if needed)."""
    groups: dict[int | None, list[Item]] = defaultdict(list)
    members: dict[int | None, list[tuple[PlannedLine, range]]] = defaultdict(list)
    for planned, owned in ordinals(lines):
        if planned.inputs is None or whole_line_key(owned) in kept.vectors or any(o in kept.refused for o in owned):
            continue
        missing = [Item(o, text) for o, text in zip(owned, planned.inputs, strict=True) if o not in kept.vectors]
        if missing:
            groups[planned.dimensions] += missing
            members[planned.dimensions].append((planned, owned))
    if not groups:
        return
    hold = charge.reserve(access.payer(row), sum(tokens.estimate(i.text or "") for g in groups.values() for i in g))
    try:
        for dimensions, items in groups.items():
            try:
                await embed(items, message.model, dimensions, pacer, fresh)
            except JobFailed as failure:
                if dimensions is None:
                    raise
                await _refused_as_a_whole(message, row, members[dimensions], fresh, pacer, failure)
    finally:
        charge.settle(hold, fresh.tokens)


async def _refused_as_a_whole(message: ChunkMessage, row: dict[str, Any], members: list[tuple[PlannedLine, range]],
                              fresh: Outcome, pacer: Pacer, failure: JobFailed) -> None:
    """A ``dimensions`` the upstream refuses (``embed`` calls that final): ask with one line, answer all alike.

    The lines of a group differ only in their inputs, so the one line's verdict (its status and
    error body, exactly as the upstream gave them) is every line's; a refusal costs one request,
    not one per line. If that line passes, the refusal was about something else: the batch fails.
    """
    first = members[0][0]
    body = {"model": message.model, "input": first.inputs, "dimensions": first.dimensions,
            "encoding_format": first.encoding}
    probe = PlannedLine(first.line, first.custom_id, body=json.dumps(body, ensure_ascii=False))
    record, used, _ = await send_line(message.id, probe, "/embeddings", message.model, pacer, access.payer(row),
                                      row.get(access.OWNER_FIELD))
    fresh.tokens += used
    kind, text = output.untag(record)
    if kind == output.OUTPUT:
        raise failure
    response = json.loads(text)["response"]
    for planned, owned in members:
        fresh.vectors[whole_line_key(owned)] = output.answered(
            message.id, planned, int(response["status_code"]), str(response["request_id"]),
            json.dumps(response["body"], ensure_ascii=False, separators=(",", ":")))


async def _send_each(rt: Runtime, message: ChunkMessage, row: dict[str, Any], lines: list[PlannedLine],
                     kept: Outcome, fresh: Outcome, pacer: Pacer) -> None:
    """Lines sent as they are, a few at a time; after the first failure no new line starts."""
    todo = [(planned, owned.start) for planned, owned in ordinals(lines)
            if planned.inputs is None and owned.start not in kept.vectors]
    if not todo:
        return
    path = _PATHS[str(row.get("endpoint"))]
    payer, owner = access.payer(row), row.get(access.OWNER_FIELD)
    slots = line_slots(message.model)
    failures: list[BaseException] = []
    stop_starting = time.monotonic() + START_LINES_FOR_SECONDS
    left: list[int] = []
    checkpoint = _Checkpoint(rt, message, kept, fresh)

    async def one(planned: PlannedLine, ordinal: int) -> None:
        async with slots:
            if failures:
                return
            if time.monotonic() > stop_starting:
                left.append(ordinal)
                return
            try:
                record, used, generated = await send_line(message.id, planned, path, message.model, pacer, payer,
                                                          owner)
            except Exception as exc:
                failures.append(exc)
                return
            fresh.vectors[ordinal] = record
            fresh.tokens += used
            fresh.output_tokens += generated
            checkpoint.due()

    try:
        await asyncio.gather(*(one(planned, ordinal) for planned, ordinal in todo))
    finally:
        await checkpoint.done()
    if failures:
        raise _most_telling(failures)
    if left:
        raise TurnOver()


class _Checkpoint:
    """Saves the finished lines now and then while a chunk runs, one save at a time, in the background.

    A host killed mid-chunk runs no handler; what was saved is all the next delivery finds. Saving
    at most every :data:`CHECKPOINT_SECONDS` bounds what a kill re-sends to that much work.
    """

    def __init__(self, rt: Runtime, message: ChunkMessage, kept: Outcome, fresh: Outcome) -> None:
        self.rt, self.message, self.kept, self.fresh = rt, message, kept, fresh
        self.last = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    def due(self) -> None:
        if (self.task is None or self.task.done()) and time.monotonic() - self.last >= CHECKPOINT_SECONDS:
            self.last = time.monotonic()
            snapshot = Outcome(dict(self.kept.vectors), self.kept.tokens, dict(self.kept.refused),
                               self.kept.output_tokens)
            snapshot.absorb(Outcome(dict(self.fresh.vectors), self.fresh.tokens, dict(self.fresh.refused),
                                    self.fresh.output_tokens))
            self.task = asyncio.create_task(progress.save(self.rt, self.message.id, self.message.chunk, snapshot))

    async def done(self) -> None:
        """Wait for a save in flight (a later, fuller save must not be overwritten by it)."""
        if self.task is not None:
            try:
                await self.task
            except Exception:  # a checkpoint is an optimisation: the final save or record still follows
                logger.warning("batch chunk checkpoint failed", exc_info=True)


def _most_telling(failures: list[BaseException]) -> BaseException:
    """The failure that decides what happens to the chunk: a final one, else an outage, else the longest pause."""
    for exc in failures:
        if isinstance(exc, JobFailed):
            return exc
    for exc in failures:
        if not isinstance(exc, Throttled):
            logger.info(json.dumps({"event": "batch_chunk_failed", "error": f"{type(exc).__name__}: {exc}"[:300]}))
            return exc
    return max(failures, key=lambda exc: exc.wait if isinstance(exc, Throttled) else 0.0)
