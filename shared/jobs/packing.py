"""Inputs into as few upstream requests as the limits allow.

A chunk is one planned upstream request: at most 2048 inputs and at most ``REQUEST_TOKEN_BUDGET``
tokens (``shared.tokens.measure``, exact where it could matter). Packing is greedy in input order,
which keeps results in order for free and is optimal for a fixed order. Inputs that can never be
sent (empty, or over 8192 tokens) are failed here, individually, and still occupy their place in a
chunk so that every input has exactly one result line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shared import tokens
from shared.jobs.messages import MAX_INPUT_ID_CHARS


@dataclass(slots=True)
class Item:
    """One input on its way through the pipeline."""

    index: int
    text: str | None
    id: str | None = None
    tokens: int = 0
    error_code: str | None = None
    error_message: str | None = None

    def to_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            line["id"] = self.id
        if self.text is not None:
            line["text"] = self.text
        else:
            line["error"] = {"code": self.error_code, "message": self.error_message}
        return line

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> Item:
        error = line.get("error") or {}
        return cls(index=line["index"], text=line.get("text"), id=line.get("id"),
                   error_code=error.get("code"), error_message=error.get("message"))


class InvalidInput(ValueError):
    """An input that is not a string or an ``{"id", "text"}`` object: the job itself is invalid."""


def make_item(index: int, value: object) -> Item:
    """Normalise one input (a string, or an ``{"id","text"}`` mapping) and check its size."""
    if isinstance(value, str):
        item_id, text = None, value
    elif isinstance(value, dict) and set(value) == {"id", "text"}:
        item_id, text = value["id"], value["text"]
        if not (isinstance(item_id, str) and 0 < len(item_id) <= MAX_INPUT_ID_CHARS and isinstance(text, str)):
            raise InvalidInput(f"input {index}: 'id' must be a string of 1-{MAX_INPUT_ID_CHARS} characters "
                               "and 'text' a string")
    else:
        raise InvalidInput(f"input {index}: expected a string or an object with exactly 'id' and 'text'")
    if not text:
        return Item(index, None, item_id, error_code="empty_input", error_message="The input is an empty string.")
    measured = tokens.measure(text)
    if measured > tokens.MAX_INPUT_TOKENS:
        return Item(index, None, item_id, error_code="input_too_long",
                    error_message=(f"The input has {measured} tokens; the model accepts at most "
                                   f"{tokens.MAX_INPUT_TOKENS} per input."))
    return Item(index, text, item_id, tokens=measured)


class Packer:
    """Greedy, order-keeping grouping of items into chunks within both limits (failed items cost nothing)."""

    def __init__(self, max_inputs: int = tokens.MAX_REQUEST_INPUTS, budget: int = tokens.REQUEST_TOKEN_BUDGET) -> None:
        self.max_inputs = max_inputs
        self.budget = budget
        self._chunk: list[Item] = []
        self._used = 0

    def add(self, item: Item) -> list[Item] | None:
        """Add an item; returns the previous chunk when this item starts a new one."""
        full = None
        if self._chunk and (len(self._chunk) >= self.max_inputs or self._used + item.tokens > self.budget):
            full, self._chunk, self._used = self._chunk, [], 0
        self._chunk.append(item)
        self._used += item.tokens
        return full

    def flush(self) -> list[Item] | None:
        chunk, self._chunk, self._used = self._chunk, [], 0
        return chunk or None


def pack(items: Iterable[Item], max_inputs: int = tokens.MAX_REQUEST_INPUTS,
         budget: int = tokens.REQUEST_TOKEN_BUDGET) -> Iterator[list[Item]]:
    """All chunks of ``items`` (see :class:`Packer`)."""
    packer = Packer(max_inputs, budget)
    for item in items:
        full = packer.add(item)
        if full is not None:
            yield full
    last = packer.flush()
    if last is not None:
        yield last
