"""Result lines: exact float32 round trip, ids, errors, and block parts."""

from __future__ import annotations

import array
import json
import random

from shared.jobs.packing import Item
from shared.jobs.results import PART_INPUTS, format_line, iter_parts, parts_for


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
