"""A chunk's lines into output and error records, and those into blocks of the batch's two blobs.

Shared by the worker (a finished chunk: every line has its answer) and the close (an unfinished
chunk: what it kept before a pause, and a ``batch_cancelled``/``batch_expired``/``batch_failed``
line for the rest), so a line reads the same whichever of the two wrote it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator

from shared.batch import output
from shared.batch.planned import PlannedLine, ordinals, whole_line_key
from shared.jobs import blobs, layout
from shared.jobs.embed import Outcome
from shared.jobs.runtime import Runtime


def chunk_request_id(batch_id: str, chunk: int) -> str:
    """The ``request_id`` of packed embeddings lines (one upstream call serves many lines): ours, stable."""
    return "req_" + hashlib.sha256(f"{batch_id}/chunk/{chunk}".encode()).hexdigest()[:32]


def records(batch_id: str, chunk: int, lines: list[PlannedLine], kept: Outcome, model: str,
            unfinished: tuple[str, str] | None = None) -> Iterator[bytes]:
    """Every line's tagged record, in order; a line without an answer gets ``unfinished`` (code, message).

    A generator, so a chunk's text is formatted a block at a time (:func:`stage`), never all at once.
    Without ``unfinished``, a line without an answer is a bug (the worker calls this once all are in).
    """
    request_id = chunk_request_id(batch_id, chunk)
    for planned, owned in ordinals(lines):
        if planned.inputs is not None:
            if (whole := kept.vectors.get(whole_line_key(owned))) is not None:
                yield whole
                continue
            refusal = next((kept.refused[o] for o in owned if o in kept.refused), None)
            if refusal is not None:
                yield output.refused(batch_id, planned, 400, request_id, refusal[0], refusal[1])
                continue
            if all(o in kept.vectors for o in owned):
                body = output.embeddings_body([kept.vectors[o] for o in owned], planned.encoding, model,
                                              planned.usage)
                yield output.answered(batch_id, planned, 200, request_id, body)
                continue
        elif owned.start in kept.vectors:
            yield kept.vectors[owned.start]
            continue
        if unfinished is None:
            raise RuntimeError(f"line {planned.line} of {batch_id} has no answer")
        yield output.not_run(batch_id, planned, *unfinished)


async def stage(rt: Runtime, batch_id: str, chunk: int, tagged: Iterable[bytes],
                make_id: Callable[[int, int], str] = layout.block_id) -> tuple[int, int]:
    """Stage the records as blocks of the output and error blobs; returns (output lines, error lines).

    Block ids follow from the chunk and the part number alone, so re-staging replaces; a part is
    :data:`output.PART_LINES` lines of one file, staged as soon as it is full.
    """
    sinks = {output.OUTPUT: _Sink(rt, layout.batch_output_blob(batch_id)),
             output.ERROR: _Sink(rt, layout.batch_errors_blob(batch_id))}
    for record in tagged:
        kind, line = output.untag(record)
        sink = sinks[kind]
        sink.pending.append(line)
        if len(sink.pending) >= output.PART_LINES:
            await sink.flush(make_id(chunk, sink.parts))
    for sink in sinks.values():
        if sink.pending:
            await sink.flush(make_id(chunk, sink.parts))
    return sinks[output.OUTPUT].lines, sinks[output.ERROR].lines


class _Sink:
    """One blob's part being filled."""

    def __init__(self, rt: Runtime, name: str) -> None:
        self.blob = blobs.blob_client(rt.storage, rt.container, name)
        self.pending: list[bytes] = []
        self.parts = self.lines = 0

    async def flush(self, block_id: str) -> None:
        await blobs.stage_block(self.blob, block_id, b"".join(line + b"\n" for line in self.pending))
        self.parts += 1
        self.lines += len(self.pending)
        self.pending = []


async def read_chunk(rt: Runtime, batch_id: str, chunk: int) -> list[PlannedLine]:
    source = blobs.blob_client(rt.storage, rt.container, layout.chunk_blob(batch_id, chunk))
    return [PlannedLine.from_json(line) async for line in blobs.iter_lines(source)]
