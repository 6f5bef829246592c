"""Result lines, how a chunk's lines become its results blob, and which blobs a reader reads.

A line is ``{"index": i, "id"?: ..., "embedding": [...]}`` or, for an input that failed on its own,
``{"index": i, "id"?: ..., "error": {"code", "message"}}``. Floats are written with 9 significant
digits, which round-trips float32 exactly (the upstream's precision) and is shorter and faster
than Python's float64 repr.

Read back with ``encoding_format=base64``, a line's vector is the base64 of its little-endian float32
bytes instead, as OpenAI's embeddings API sends it: the same bits, about a third of the size.

Each chunk has its own results blob (``layout.chunk_results_blob``), whose lines are staged as
blocks of ``PART_INPUTS`` lines and then committed, so a worker never holds more than one block of
text however large the vectors are, and the blob is visible only once whole: a reader never sees
half a chunk. The block ids follow from the part number alone, so a redelivered chunk stages the
same ids and commits the same blob again, never a duplicate line.

A job's results are its chunks' blobs in chunk order, where a chunk's ``.closed.jsonl`` blob (what
the job's early end decided, ``finalize.close_incomplete``) replaces the worker's plain one
(:func:`readable_blobs`).
"""

from __future__ import annotations

import array
import base64
import json
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING

from shared.jobs import blobs, layout
from shared.jobs.packing import Item

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient

PART_INPUTS = 256
_FLOAT = "{:.9g}".format


def parts_for(count: int) -> int:
    return -(-count // PART_INPUTS)


def format_line(item: Item, vector: bytes | None) -> str:
    head = f'{{"index":{item.index}'
    if item.id is not None:
        head += f',"id":{json.dumps(item.id, ensure_ascii=False)}'
    if vector is None:
        error = {"code": item.error_code or "failed", "message": item.error_message or "The input failed."}
        return f'{head},"error":{json.dumps(error, ensure_ascii=False)}}}'
    values = array.array("f", vector)
    if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
        values.byteswap()
    return f'{head},"embedding":[{",".join(map(_FLOAT, values))}]}}'


def iter_parts(items: list[Item], vectors: dict[int, bytes]) -> Iterator[tuple[int, bytes]]:
    """(part number, JSONL bytes) for a chunk's items, in order."""
    for part, start in enumerate(range(0, len(items), PART_INPUTS)):
        lines = [format_line(item, vectors.get(item.index)) for item in items[start:start + PART_INPUTS]]
        yield part, ("\n".join(lines) + "\n").encode("utf-8")


async def write_chunk(blob: BlobClient, items: list[Item], vectors: dict[int, bytes]) -> None:
    """Write one chunk's results blob whole (stage its parts, then commit them): visible only once complete."""
    block_ids: list[str] = []
    for part, data in iter_parts(items, vectors):
        block_ids.append(f"p{part:05d}")
        await blobs.stage_block(blob, block_ids[-1], data)
    await blobs.commit_blocks(blob, block_ids)


def readable_blobs(names: Iterable[str], job_id: str) -> list[str]:
    """The blobs to read, in input order: one per chunk, its ``.closed.jsonl`` one when there is one.

    ``names`` are listed blob names; only the job's results blobs count (``layout.results_prefix``,
    no deeper folder). A job that ended before per-chunk blobs has its one legacy blob instead.
    """
    prefix = layout.results_prefix(job_id)
    chosen: dict[int, tuple[bool, str]] = {}
    legacy: list[str] = []
    for name in names:
        if name == layout.legacy_results_blob(job_id):
            legacy.append(name)
        parsed = layout.chunk_of_results(name)
        if parsed is None or not name.startswith(prefix) or "/" in name[len(prefix):]:
            continue
        chunk, closed = parsed
        if chunk not in chosen or closed:
            chosen[chunk] = (closed, name)
    return [chosen[chunk][1] for chunk in sorted(chosen)] if chosen else legacy


def to_base64(line: bytes) -> bytes:
    """One result line with its vector as base64 of little-endian float32; error lines unchanged."""
    record = json.loads(line)
    vector = record.get("embedding")
    if not isinstance(vector, list):
        return line
    values = array.array("f", vector)  # the 9-digit floats give back the exact float32 bits
    if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
        values.byteswap()
    record["embedding"] = base64.b64encode(values.tobytes()).decode("ascii")
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def base64_lines(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The results stream re-encoded line by line as it downloads (memory stays at one piece)."""
    rest = b""
    async for piece in pieces:
        lines = (rest + piece).split(b"\n")
        rest = lines.pop()
        if lines:
            yield b"".join(to_base64(line) + b"\n" for line in lines if line)
    if rest.strip():
        yield to_base64(rest) + b"\n"
