"""A chunk's lines into output and error records: what a closing chunk writes from what it kept."""

from __future__ import annotations

import array
import base64
import json

import pytest

from shared.batch import output
from shared.batch.assemble import records
from shared.batch.planned import PlannedLine, ordinals
from shared.jobs.embed import Outcome

BATCH = "batch_" + "ab" * 16


def vector(*values: float) -> bytes:
    return array.array("f", values).tobytes()


def lines() -> list[PlannedLine]:
    return [
        PlannedLine(10, "two-inputs", inputs=["a", "b"], usage=2, encoding="base64"),
        PlannedLine(11, "as-is", body='{"model":"m","input":[1,2]}'),
        PlannedLine(12, "half-done", inputs=["c", "d"], usage=2),
        PlannedLine(13, "refused", inputs=["e"], usage=1, dimensions=8),
        PlannedLine(14, "float", inputs=["f"], usage=1),
    ]


def test_ordinals_give_each_packed_input_and_each_other_line_its_own() -> None:
    assert [(p.custom_id, list(r)) for p, r in ordinals(lines())] == [
        ("two-inputs", [0, 1]), ("as-is", [2]), ("half-done", [3, 4]), ("refused", [5]), ("float", [6])]


def test_a_closing_chunk_writes_what_it_kept_and_marks_the_rest_not_run() -> None:
    kept = Outcome({0: vector(0.5, -1.0), 1: vector(0.25, 2.0), 3: vector(1.0, 1.0), 6: vector(0.1, 0.2)}, 7,
                   refused={5: ("invalid_input", "The input is not acceptable.")})
    kept.vectors[2] = output.answered(BATCH, lines()[1], 200, "req-upstream", '{"object":"list","data":[]}')
    tagged = list(records(BATCH, 4, lines(), kept, "text-embedding-3-small", ("batch_cancelled", "Cancelled.")))
    kinds = [output.untag(t)[0] for t in tagged]
    assert kinds == [output.OUTPUT, output.OUTPUT, output.ERROR, output.ERROR, output.OUTPUT]
    parsed = [json.loads(output.untag(t)[1]) for t in tagged]
    assert [p["custom_id"] for p in parsed] == ["two-inputs", "as-is", "half-done", "refused", "float"]
    assert all(p["id"] == output.request_id(BATCH, line.line) for p, line in zip(parsed, lines(), strict=True))
    first = parsed[0]["response"]
    assert first["status_code"] == 200 and first["body"]["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert [base64.b64decode(d["embedding"]) for d in first["body"]["data"]] == [vector(0.5, -1.0), vector(0.25, 2.0)]
    assert parsed[1]["response"]["request_id"] == "req-upstream"
    assert parsed[2]["response"] is None and parsed[2]["error"]["code"] == "batch_cancelled"
    refused = parsed[3]["response"]
    assert refused["status_code"] == 400 and refused["body"]["error"]["code"] == "invalid_input"
    assert refused["body"]["error"]["type"] == "invalid_request_error" and parsed[3]["error"] is None
    floats = parsed[4]["response"]["body"]["data"][0]["embedding"]
    assert array.array("f", floats).tobytes() == vector(0.1, 0.2)  # 9 digits give back the exact float32


def test_a_finished_chunk_without_an_answer_for_a_line_is_a_bug_not_a_lost_line() -> None:
    with pytest.raises(RuntimeError, match="has no answer"):
        list(records(BATCH, 0, lines(), Outcome({}, 0), "m"))


def test_request_ids_are_stable_and_distinct() -> None:
    assert output.request_id(BATCH, 1) == output.request_id(BATCH, 1)
    assert output.request_id(BATCH, 1) != output.request_id(BATCH, 2)
    assert len(output.request_id(BATCH, 1)) == len("batch_req_") + 32


def test_planned_lines_round_trip_through_the_chunk_blob() -> None:
    for line in lines():
        assert PlannedLine.from_json(line.to_json()) == line
