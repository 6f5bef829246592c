"""A batch's ``plan`` message: its input file becomes chunk blobs and ordinary ``chunk`` messages.

The batch row (written by ``POST /v1/batches``) names the input file; the message names only the
batch and proves it with the row's token (``shared.jobs.proof``). The planner:

1. moves the row from ``queued`` to ``running`` (``started_at``), so exactly one plan starts it;
2. streams the file line by line through ``lines.parse_line`` (the upload checked it, but the
   allowlist may have changed since): a line that fails now, or a missing file, ends the batch
   ``failed`` with OpenAI's ``errors`` on the row;
3. writes chunk blobs of whole lines: embeddings lines are packed by inputs and tokens
   (``charge.chunk_budget()``), so one upstream call serves many lines; chat and Responses lines
   go :data:`CHAT_CHUNK_LINES` to a chunk;
4. records ``chunks`` and ``total``, enqueues one ``chunk`` message per chunk (``deadline`` = the
   batch's ``expires_at``), then ``enqueued`` and ``in_progress_at``.

Deterministic like the embedding-job planner: a redelivered plan message, or one that follows a
crash half-way, rewrites the same blobs and re-sends chunk messages the workers recognise as done;
once ``enqueued`` is set it does nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from shared import tokens
from shared.batch import lines as batch_lines
from shared.batch.planned import PlannedLine
from shared.config import get_settings
from shared.jobs import blobs, charge, enqueue, layout, messages, proof, retention
from shared.jobs.planner import WRITE_CONCURRENCY, bounded
from shared.jobs.runtime import Runtime
from shared.jobs.store import BATCH_KIND, FAILED, KIND_FIELD, QUEUED, RUNNING, clip, now
from shared.validation import with_fields

logger = logging.getLogger("gateway.batch")

# Chat and Responses lines per chunk: one chunk runs at most this many requests in one invocation.
CHAT_CHUNK_LINES = 64
# Embeddings body fields a packed call can honour line by line; a line with any other field is sent alone.
_PACKABLE_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format"})
_MAX_DIMENSIONS = 8192


class BatchInvalid(ValueError):
    """The input file cannot run as it is now: the batch fails with these OpenAI-shaped ``errors``."""

    def __init__(self, code: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else code)
        self.code = code
        self.errors = errors


async def plan_batch(rt: Runtime, message: messages.BatchMessage) -> None:
    batch_id = message.id
    row = await rt.store.get_row(batch_id)
    if row is None or row.get(KIND_FIELD) != BATCH_KIND or not proof.proves(row, message.token):
        raise proof.Unproven(f"a batch message for {batch_id} does not carry the token of an existing batch")
    status = row.get("status")
    if status == QUEUED:
        await rt.store.transition(batch_id, {"status": RUNNING, "started_at": now()}, only_from=frozenset({QUEUED}))
        row = await rt.store.get_row(batch_id) or row
    if row.get("status") != RUNNING or row.get("enqueued"):
        return  # cancelled before it ran, already planned, or ended
    try:
        planned = await _write_chunks(rt, row)
    except BatchInvalid as exc:
        ended_at = now()
        await rt.store.transition(batch_id, {
            "status": FAILED, "failed_at": ended_at, "completed_at": ended_at, **retention.end_fields(ended_at),
            "error_code": exc.code, "error": clip(str(exc)), "errors": clip(json.dumps(exc.errors, ensure_ascii=False)),
        }, only_from=frozenset({RUNNING}))
        logger.info(json.dumps({"event": "batch_invalid", "batch_id": batch_id, "code": exc.code}))
        return
    total = sum(count for _, _, count in planned)
    await rt.store.merge(batch_id, {"chunks": len(planned), "total": total})
    base: dict[str, object] = {"schema": messages.SCHEMA_VERSION, "type": "chunk", "id": batch_id,
                               "model": row["deployment"], "token": row[proof.TOKEN_FIELD]}
    if row.get("expires_at") is not None:
        base["deadline"] = float(row["expires_at"])
    bodies = [json.dumps({**base, "chunk": n, "start": start, "count": count}, separators=(",", ":"))
              for n, start, count in planned]
    await bounded(enqueue.put_message(rt.queue, body) for body in bodies)
    await rt.store.merge(batch_id, {"enqueued": True, "in_progress_at": now()})
    logger.info(json.dumps({"event": "batch_planned", "batch_id": batch_id, "lines": total, "chunks": len(planned)}))


async def numbered_lines(rt: Runtime, file_id: str) -> AsyncIterator[tuple[int, bytes]]:
    """(1-based physical line number, line) of the file, blank lines skipped but counted."""
    pending = b""
    number = 0
    async for piece in blobs.iter_chunks(blobs.blob_client(rt.storage, rt.container, layout.file_blob(file_id))):
        pending += piece
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            if raw.strip():
                yield number, raw.removesuffix(b"\r")
    if pending.strip():
        yield number + 1, pending.removesuffix(b"\r")


def _invalid(error: batch_lines.LineError) -> BatchInvalid:
    return BatchInvalid(error.code, [error.to_dict()])


def _planned(index: int, line: batch_lines.BatchLine, deployment: str) -> tuple[PlannedLine, int, int]:
    """The line as the worker will read it, with the inputs and tokens it takes in a packed call."""
    body = line.body
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    dimensions = body.get("dimensions")
    encoding = body.get("encoding_format", "float")
    packable = (line.url == batch_lines.EMBEDDINGS and set(body) <= _PACKABLE_FIELDS
                and isinstance(texts, list) and 0 < len(texts) <= tokens.MAX_REQUEST_INPUTS
                and all(isinstance(t, str) and t for t in texts)
                and (dimensions is None or (type(dimensions) is int and 1 <= dimensions <= _MAX_DIMENSIONS))
                and encoding in ("float", "base64"))
    if packable:
        assert isinstance(texts, list)
        measured = [tokens.measure(t) for t in texts]
        if max(measured) <= tokens.MAX_INPUT_TOKENS:
            usage = sum(tokens.count(t) for t in texts)
            return (PlannedLine(index, line.custom_id, inputs=texts, usage=usage, dimensions=dimensions,
                                encoding=encoding), len(texts), sum(measured))
    raw = line.raw_body if line.model == deployment else with_fields(line.raw_body, {"model": deployment})
    return PlannedLine(index, line.custom_id, body=raw.decode("utf-8")), 1, 0


async def _write_chunks(rt: Runtime, row: dict[str, Any]) -> list[tuple[int, int, int]]:
    """Write every chunk blob; returns (chunk, first line, lines) per chunk."""
    batch_id, endpoint, model = row["PartitionKey"], row.get("endpoint"), row.get("model")
    deployment = row["deployment"]
    embeddings = endpoint == batch_lines.EMBEDDINGS
    budget = charge.chunk_budget()
    planned: list[tuple[int, int, int]] = []
    chunk: list[PlannedLine] = []
    used_inputs = used_tokens = 0
    writer = _Writer(rt, batch_id)

    async def close_chunk() -> None:
        nonlocal chunk, used_inputs, used_tokens
        if chunk:
            planned.append((len(planned), chunk[0].line, len(chunk)))
            await writer.write(len(planned) - 1, chunk)
            chunk, used_inputs, used_tokens = [], 0, 0

    index = 0
    try:
        async for number, raw in numbered_lines(rt, str(row["input_file_id"])):
            try:
                line = batch_lines.parse_line(raw, number)
                if index == 0:
                    batch_lines.check_model(line.model, line.url, get_settings(), number)
            except batch_lines.LineError as exc:
                raise _invalid(exc) from None
            if line.url != endpoint or line.model != model:
                raise _invalid(batch_lines.LineError(
                    "mismatched_url" if line.url != endpoint else "mismatched_model",
                    f"The line's {'url' if line.url != endpoint else 'model'} differs from the batch's "
                    f"({endpoint if line.url != endpoint else model}).", number,
                    "url" if line.url != endpoint else "body.model"))
            item, inputs, cost = _planned(index, line, deployment)
            index += 1
            if embeddings:
                full = chunk and (len(chunk) >= tokens.MAX_REQUEST_INPUTS
                                  or used_inputs + inputs > tokens.MAX_REQUEST_INPUTS or used_tokens + cost > budget)
            else:
                full = len(chunk) >= CHAT_CHUNK_LINES
            if full:
                await close_chunk()
            chunk.append(item)
            used_inputs += inputs
            used_tokens += cost
        await close_chunk()
        await writer.drain()
    except blobs.BlobMissing:
        raise BatchInvalid("file_not_found", [{
            "code": "file_not_found", "param": "input_file_id", "line": None,
            "message": f"The input file {row['input_file_id']} no longer exists (it was deleted before the "
                       "batch ran)."}]) from None
    finally:
        writer.cancel()
    if index == 0:
        raise BatchInvalid("empty_file", [{"code": "empty_file", "param": "input_file_id", "line": None,
                                           "message": "The input file has no lines."}])
    return planned


class _Writer:
    """Chunk blobs uploaded a few at a time while the file streams on."""

    def __init__(self, rt: Runtime, batch_id: str) -> None:
        self.rt, self.batch_id = rt, batch_id
        self.tasks: set[asyncio.Task[None]] = set()

    async def write(self, number: int, chunk: list[PlannedLine]) -> None:
        blob = blobs.blob_client(self.rt.storage, self.rt.container, layout.chunk_blob(self.batch_id, number))
        task = asyncio.create_task(blobs.upload_lines(blob, [line.to_json() for line in chunk]))
        self.tasks.add(task)
        if len(self.tasks) >= WRITE_CONCURRENCY:
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            self.tasks.difference_update(done)
            for finished in done:
                finished.result()

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks)
            self.tasks.clear()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
