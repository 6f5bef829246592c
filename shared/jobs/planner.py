"""A ``job`` message becomes chunk input blobs and ``chunk`` messages.

Planning is deterministic (same inputs, same chunks, same names), so running it twice, after a
redelivery or a crash half-way, rewrites identical blobs and re-sends chunk messages that the
workers recognise as done. The job row records ``chunks`` (how many to wait for) before any chunk
message exists, and ``enqueued`` once all are sent, after which a duplicate job message is a no-op.

Inputs stream through: inline ones from the message, referenced ones line by line from their blob;
only the chunk being filled is held in memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any

from shared.config import get_settings
from shared.errors import GatewayError
from shared.jobs import blobs, charge, enqueue, layout, messages, proof, refs
from shared.jobs.embed import JobFailed
from shared.jobs.embedding_models import job_deployment
from shared.jobs.packing import InvalidInput, Item, Packer, make_item
from shared.jobs.runtime import Runtime
from shared.jobs.store import QUEUED, RUNNING, TERMINAL, JobState, fields_for, now

logger = logging.getLogger("gateway.jobs")

# How many chunk blobs / messages are written at once while planning.
WRITE_CONCURRENCY = 8
# A job is planned in one invocation (about 12 s per million inputs measured by `make bench`), so
# its size is bounded to keep planning well inside the function timeout; larger work is several jobs.
MAX_JOB_INPUTS = 10_000_000


class InvalidJob(ValueError):
    """The job cannot be run as submitted (bad input blob, unknown model, ...); retrying will not help."""


async def _inline(values: list[str | messages.InputItem]) -> AsyncIterator[object]:
    for value in values:
        yield value if isinstance(value, str) else {"id": value.id, "text": value.text}


async def _from_blob(rt: Runtime, ref: messages.BlobRef, job_id: str) -> AsyncIterator[object]:
    """Lines of the input blob, read only if ``refs`` allows the reference; one error for forbidden and missing."""
    from azure.core.exceptions import HttpResponseError

    try:
        container, name = refs.allowed_input(ref, job_id, rt.container)
    except refs.InputUnavailable as exc:
        raise InvalidJob(str(exc)) from None
    line_number = 0
    try:
        async for line in blobs.iter_lines(blobs.blob_client(rt.storage, container, name)):
            line_number += 1
            try:
                yield json.loads(line)
            except ValueError:
                raise InvalidJob(f"input blob '{name}' line {line_number} is not valid JSON") from None
    except blobs.BlobMissing:
        raise InvalidJob(refs.UNAVAILABLE) from None
    except HttpResponseError as exc:
        if exc.status_code not in (401, 403, 404):  # an outage: let the message come back
            raise
        raise InvalidJob(refs.UNAVAILABLE) from None


def _source(rt: Runtime, message: messages.JobMessage) -> AsyncIterator[object]:
    if message.input is not None:
        return _inline(message.input)
    if message.input_blob is None:  # pragma: no cover - the schema requires one of the two
        raise InvalidJob("the job has neither 'input' nor 'input_blob'")
    return _from_blob(rt, message.input_blob, message.id)


def message_token(message: messages.JobMessage) -> str:
    """The token this job message proves itself with (its own, else the digest of its canonical form)."""
    return message.token or proof.digest_token(messages.to_json(message))


async def plan(rt: Runtime, message: messages.JobMessage) -> None:
    try:
        deployment = job_deployment(message.model, get_settings())
    except GatewayError as exc:
        raise InvalidJob(exc.message) from None
    job_id = message.id
    token = message_token(message)
    await rt.store.create(job_id, fields_for(message, deployment, "queue", token=token))
    row = await rt.store.get_row(job_id)
    if row is None:  # pragma: no cover - just created
        raise RuntimeError(f"job row {job_id} vanished")
    if not proof.proves(row, token):
        raise proof.Unproven(f"a job message for {job_id} does not carry that job's token")
    state = JobState(row)
    if state.status in TERMINAL or row.get("enqueued"):
        return
    await rt.store.transition(job_id, {"status": RUNNING, "started_at": now(), "deployment": deployment},
                              only_from=frozenset({QUEUED}))

    chunks = await _write_chunks(rt, job_id, _source(rt, message))
    total = sum(count for _, _, count in chunks)
    if total == 0:
        raise InvalidJob("the job has no inputs")
    await rt.store.merge(job_id, {"total": total, "chunks": len(chunks)})
    base: dict[str, object] = {"schema": messages.SCHEMA_VERSION, "type": "chunk", "id": job_id, "model": deployment,
                               "deadline": await _deadline(rt, job_id)}
    if row.get(proof.TOKEN_FIELD):
        base["token"] = row[proof.TOKEN_FIELD]
    if message.dimensions is not None:
        base["dimensions"] = message.dimensions
    bodies = [json.dumps({**base, "chunk": n, "start": start, "count": count}, separators=(",", ":"))
              for n, start, count in chunks]
    await bounded(enqueue.put_message(rt.queue, body) for body in bodies)
    await rt.store.merge(job_id, {"enqueued": True})
    logger.info(json.dumps({"event": "job_planned", "job_id": job_id, "inputs": total, "chunks": len(chunks)}))


async def _deadline(rt: Runtime, job_id: str) -> float:
    """When the job's time budget ends: ``EMBEDDING_JOBS_TIME_BUDGET_HOURS`` after it started running."""
    row = await rt.store.get_row(job_id) or {}
    started = float(row.get("started_at") or now())
    return round(started + get_settings().jobs_time_budget_seconds, 3)


async def _write_chunks(rt: Runtime, job_id: str, source: AsyncIterator[object]) -> list[tuple[int, int, int]]:
    """Pack and write every chunk's input blob; returns (chunk, start, count) per chunk."""
    packer = Packer(budget=charge.chunk_budget())
    planned: list[tuple[int, int, int]] = []
    writes: set[asyncio.Task[None]] = set()

    async def write(chunk: list[Item]) -> None:
        number = len(planned)
        planned.append((number, chunk[0].index, len(chunk)))
        blob = blobs.blob_client(rt.storage, rt.container, layout.chunk_blob(job_id, number))
        task = asyncio.create_task(blobs.upload_lines(blob, (json.dumps(i.to_line(), ensure_ascii=False)
                                                              for i in chunk)))
        writes.add(task)
        if len(writes) >= WRITE_CONCURRENCY:
            done, _ = await asyncio.wait(writes, return_when=asyncio.FIRST_COMPLETED)
            writes.difference_update(done)
            for finished in done:
                finished.result()

    try:
        index = 0
        async for value in source:
            if index >= MAX_JOB_INPUTS:
                raise InvalidJob(f"the job has more than {MAX_JOB_INPUTS} inputs; split it into several jobs")
            try:
                item = make_item(index, value)
            except InvalidInput as exc:
                raise InvalidJob(str(exc)) from None
            index += 1
            full = packer.add(item)
            if full is not None:
                await write(full)
        last = packer.flush()
        if last is not None:
            await write(last)
        if writes:
            await asyncio.gather(*writes)
    finally:
        for task in writes:
            task.cancel()
    return planned


async def bounded(calls: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Await coroutines with at most ``2 * WRITE_CONCURRENCY`` at a time."""
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY * 2)

    async def one(call: Coroutine[Any, Any, None]) -> None:
        async with semaphore:
            await call

    await asyncio.gather(*(one(call) for call in calls))


__all__ = ["InvalidJob", "JobFailed", "bounded", "message_token", "plan"]
