"""Result lines, and how a chunk's lines are cut into blocks of the results blob.

A line is ``{"index": i, "id"?: ..., "embedding": [...]}`` or, for an input that failed on its own,
``{"index": i, "id"?: ..., "error": {"code", "message"}}``. Floats are written with 9 significant
digits, which round-trips float32 exactly (the upstream's precision) and is shorter and faster
than Python's float64 repr.

Read back with ``encoding_format=base64``, a line's vector is the base64 of its little-endian float32
bytes instead, as OpenAI's embeddings API sends it: the same bits, about a third of the size.

A chunk's lines are staged as blocks of ``PART_INPUTS`` lines, so a worker never holds more than
one block of text however large the vectors are, and the block ids follow from the chunk number and
its input count alone: a redelivered chunk stages the same ids and replaces, never duplicates.
"""

from __future__ import annotations

import array
import base64
import json
import sys
from collections.abc import AsyncIterator, Iterator

from shared.jobs.packing import Item

PART_INPUTS = 256
# Azure block blobs have at most 50,000 committed blocks.
MAX_BLOCKS = 50_000
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
