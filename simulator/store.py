"""In-memory store of `/responses` results, for retrieve, delete and `previous_response_id`.

Bounded (oldest evicted first) so a long benchmark cannot grow the simulator without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Background:
    """A background response runs on its own clock, whoever is connected: its stream's events, when
    each one happens (seconds after ``started``, a monotonic time), and when it was cancelled, if it was."""

    events: list[bytes]
    offsets: list[float]
    started: float
    cancelled_at: float | None = None

    def elapsed(self, now: float) -> float:
        """Seconds of generation so far (a cancel stops the clock)."""
        end = now if self.cancelled_at is None else min(now, self.cancelled_at)
        return end - self.started

    def finished(self, now: float) -> bool:
        return self.cancelled_at is None and self.elapsed(now) >= (self.offsets[-1] if self.offsets else 0.0)


@dataclass(slots=True)
class StoredResponse:
    """A stored response plus what a follow-up turn needs to know about its conversation."""

    payload: dict[str, Any]
    turn: int  # 1 for a fresh conversation, +1 per previous_response_id hop
    context_tokens: int  # input + output tokens of the conversation up to and including it
    input_items: list[dict[str, Any]] = field(default_factory=list)  # as `input_items` lists them
    background: Background | None = None  # the timeline of a background response


class ResponseStore:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, response_id: str, item: StoredResponse) -> None:
        self._items[response_id] = item
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        return self._items.pop(response_id, None) is not None

    def clear(self) -> None:
        self._items.clear()
