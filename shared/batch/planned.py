"""One batch line as the planner leaves it in a chunk blob, for the worker and the close to read back.

A chunk blob (``layout.chunk_blob``) holds one JSON object per input line, in input order:
``{"line", "custom_id", "body"}`` for a line sent as it is (chat, Responses, and embeddings lines
that cannot be packed), or ``{"line", "custom_id", "inputs", "usage", "dimensions"?, "encoding"}``
for an embeddings line whose inputs are packed with other lines' into shared upstream calls.

``body`` is the line's request body as uploaded, byte for byte except ``model``, already rewritten
to the deployment (``shared.validation.with_fields``, as the gateway does for live calls).

Progress and results are keyed by *ordinals*: each packed input takes one, each line sent as it is
takes one, in chunk order (:func:`ordinals`). They follow from the chunk blob alone, so every
delivery of a chunk, and the close of an unfinished one, agree on them. A packed line refused as a
whole (its ``dimensions``) keeps its record under :func:`whole_line_key` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Encoding = Literal["float", "base64"]


@dataclass(slots=True)
class PlannedLine:
    line: int
    custom_id: str
    body: str | None = None
    inputs: list[str] | None = None
    usage: int = 0
    dimensions: int | None = None
    encoding: Encoding = "float"

    @property
    def packed(self) -> bool:
        """An embeddings line whose inputs go out in shared calls (else the line is sent as it is)."""
        return self.inputs is not None

    def to_json(self) -> str:
        record: dict[str, Any] = {"line": self.line, "custom_id": self.custom_id}
        if self.inputs is None:
            record["body"] = self.body
        else:
            record.update(inputs=self.inputs, usage=self.usage, encoding=self.encoding)
            if self.dimensions is not None:
                record["dimensions"] = self.dimensions
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> PlannedLine:
        record = json.loads(raw)
        return cls(line=int(record["line"]), custom_id=str(record["custom_id"]), body=record.get("body"),
                   inputs=record.get("inputs"), usage=int(record.get("usage") or 0),
                   dimensions=record.get("dimensions"),
                   encoding="base64" if record.get("encoding") == "base64" else "float")


def ordinals(lines: list[PlannedLine]) -> Iterator[tuple[PlannedLine, range]]:
    """Each line with the ordinals it owns in its chunk (one per packed input, else one)."""
    start = 0
    for planned in lines:
        width = len(planned.inputs) if planned.inputs is not None else 1
        yield planned, range(start, start + width)
        start += width


def whole_line_key(owned: range) -> int:
    """Where a packed line's whole record is kept when the upstream refused the line as a whole.

    Negative, so it never meets an ordinal (those hold the line's vectors, one per input).
    """
    return -(owned.start + 1)
