"""Result lines: exact float32 round trip, ids, errors, block parts, and which blobs a reader reads."""

from __future__ import annotations

import array
import base64
import json
import random
from collections.abc import AsyncIterator

from shared.jobs import layout
from shared.jobs.packing import Item
from shared.jobs.results import PART_INPUTS, format_line, iter_parts, parts_for, readable_blobs


def vector(n: int = 64) -> bytes:
    rng = random.Random(n)
    return array.array("f", [rng.gauss(0, 0.05) for _ in range(n)] + [1e-8, -3.4e38]).tobytes()


def test_floats_round_trip_exactly() -> None:
    raw = vector()
    line = json.loads(format_line(Item(3, "x"), raw))
    assert line["index"] == 3 and "id" not in line
    assert array.array("f", line["embedding"]).tobytes() == raw


def test_id_and_error_lines() -> None:
    line = json.loads(format_line(Item(1, None, 'doc "1"', error_code="input_too_long", error_message="long"), None))
    assert line == {"index": 1, "id": 'doc "1"', "error": {"code": "input_too_long", "message": "long"}}


def test_parts_split_by_input_count() -> None:
    items = [Item(i, "t") for i in range(PART_INPUTS * 2 + 5)]
    vectors = {i: vector(8) for i in range(len(items))}
    parts = list(iter_parts(items, vectors))
    assert [p for p, _ in parts] == [0, 1, 2] == list(range(parts_for(len(items))))
    lines = [json.loads(line) for _, data in parts for line in data.splitlines()]
    assert [line["index"] for line in lines] == list(range(len(items)))


async def test_base64_lines_carry_the_same_float32_bytes_as_the_float_lines() -> None:
    # Issue #14 finding 9: encoding_format=base64, as OpenAI's embeddings API (little-endian float32).
    from shared.jobs.results import base64_lines

    raws = [vector(16), vector(17)]
    text = "\n".join([format_line(Item(0, "a", "embedding"), raws[0]),
                      format_line(Item(1, "b", error_code="input_too_long", error_message="long"), None),
                      format_line(Item(2, "c"), raws[1])]) + "\n"
    data = text.encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7):  # lines split across download pieces
            yield data[start:start + 7]

    out = b"".join([piece async for piece in base64_lines(pieces())])
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2] and out.endswith(b"\n")
    assert lines[0]["id"] == "embedding"
    assert base64.b64decode(lines[0]["embedding"]) == raws[0]
    assert lines[1] == {"index": 1, "error": {"code": "input_too_long", "message": "long"}}
    assert base64.b64decode(lines[2]["embedding"]) == raws[1]


def test_a_reader_takes_one_blob_per_chunk_in_chunk_order_the_closed_one_first() -> None:
    job = "ejob_x"
    plain, closed = layout.chunk_results_blob, layout.closed_results_blob
    listed = [closed(job, 1), plain(job, 2), plain(job, 1), plain(job, 0), plain(job, 1_000_000),
              f"{layout.results_prefix(job)}000003.tmp", f"{layout.results_prefix(job)}notes.jsonl",
              f"{layout.results_prefix(job)}000004.closed.jsonl.old", closed(job, 5),
              f"{layout.results_prefix(job)}deeper/000006.jsonl", f"jobs/{job}/results-old/000007.jsonl",
              layout.legacy_results_blob(job)]
    assert readable_blobs(listed, job) == [plain(job, 0), closed(job, 1), plain(job, 2), closed(job, 5),
                                           plain(job, 1_000_000)]
    assert readable_blobs(reversed(listed), job) == readable_blobs(listed, job)
    # A job that ended before results were kept per chunk: its one blob, still readable.
    assert readable_blobs([layout.legacy_results_blob(job), f"jobs/{job}/chunks/000000.jsonl"], job) == \
        [f"jobs/{job}/results.jsonl"]
    assert readable_blobs([layout.legacy_results_blob("ejob_other")], job) == []
    assert plain(job, 7) == f"jobs/{job}/results/000007.jsonl" and closed(job, 7).endswith("000007.closed.jsonl")
