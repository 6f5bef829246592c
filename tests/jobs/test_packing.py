"""Packing inputs into upstream requests: limits, order, and individual failures."""

from __future__ import annotations

import pytest

from shared import tokens
from shared.jobs.packing import InvalidInput, Item, make_item, pack


def items(texts: list[str]) -> list[Item]:
    return [make_item(i, t) for i, t in enumerate(texts)]


def test_at_most_2048_inputs_per_chunk() -> None:
    chunks = list(pack(items(["hi"] * 5000)))
    assert [len(c) for c in chunks] == [2048, 2048, 904]
    assert [i.index for c in chunks for i in c] == list(range(5000))


def test_token_budget_closes_a_chunk() -> None:
    text = "word " * 1500  # ~1500 tokens exact, 7500 bytes
    chunks = list(pack(items([text] * 400)))
    assert len(chunks) > 1
    for chunk in chunks:
        assert sum(i.tokens for i in chunk) <= tokens.REQUEST_TOKEN_BUDGET
    assert sum(len(c) for c in chunks) == 400


def test_short_inputs_fill_a_request_to_the_input_limit() -> None:
    text = "x" * tokens.EXACT_ABOVE_BYTES
    assert [len(c) for c in pack(items([text] * 2048))] == [2048]


def test_inputs_over_the_limit_fail_alone_and_keep_their_place() -> None:
    long_text = "lorem ipsum dolor " * 4000  # far above 8192 tokens
    result = items(["a", long_text, "", "b"])
    assert result[1].text is None and result[1].error_code == "input_too_long"
    assert "8192" in (result[1].error_message or "")
    assert result[2].error_code == "empty_input"
    assert result[0].text == "a" and result[3].text == "b"
    assert [i.index for c in pack(result) for i in c] == [0, 1, 2, 3]


def test_object_inputs_keep_their_ids() -> None:
    item = make_item(7, {"id": "doc-7", "text": "hello"})
    assert (item.index, item.id, item.text) == (7, "doc-7", "hello")
    assert Item.from_line(item.to_line()) == Item(7, "hello", "doc-7")


@pytest.mark.parametrize("value", [3, None, {"text": "no id"}, {"id": "", "text": "x"}, {"id": "a", "text": 1},
                                   {"id": "a", "text": "x", "extra": 1}])
def test_malformed_inputs_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInput):
        make_item(0, value)
