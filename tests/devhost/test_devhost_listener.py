"""QueueListener semantics against an in-memory queue (fast and deterministic).

The fake enforces what matters for correctness: visibility windows, dequeue
counts and pop receipts (a stale receipt is rejected, like the real service).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError

from devhost.hostjson import QueueOptions
from devhost.queues import MessageDecodeError, QueueListener, decode_body, next_polling_delay

pytestmark = pytest.mark.timeout(30)

_receipts = itertools.count(1)


@dataclass
class _Stored:
    id: str
    content: str
    dequeue_count: int = 0
    visible_at: float = 0.0
    pop_receipt: str | None = None


@dataclass
class _Received:
    id: str
    content: str
    pop_receipt: str | None
    dequeue_count: int
    inserted_on: Any = None
    expires_on: Any = None
    next_visible_on: Any = None


class _Pages:
    def __init__(self, batch: list[_Received]) -> None:
        self.batch = batch

    def by_page(self) -> AsyncIterator[AsyncIterator[_Received]]:
        async def one_item_list() -> AsyncIterator[_Received]:
            for item in self.batch:
                yield item

        async def pages() -> AsyncIterator[AsyncIterator[_Received]]:
            yield one_item_list()

        return pages()


@dataclass
class FakeQueue:
    queue_name: str
    messages: dict[str, _Stored] = field(default_factory=dict)
    updates: list[tuple[str, int]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def create_queue(self, **kwargs: Any) -> None:
        return None

    def add(self, content: str, dequeue_count: int = 0) -> str:
        message_id = f"m{next(self.ids)}"
        self.messages[message_id] = _Stored(message_id, content, dequeue_count)
        return message_id

    def receive_messages(self, *, messages_per_page: int, max_messages: int, visibility_timeout: int) -> _Pages:
        now = time.monotonic()
        batch: list[_Received] = []
        for stored in list(self.messages.values()):
            if len(batch) == messages_per_page:
                break
            if stored.visible_at <= now:
                stored.dequeue_count += 1
                stored.visible_at = now + visibility_timeout
                stored.pop_receipt = f"r{next(_receipts)}"
                batch.append(_Received(stored.id, stored.content, stored.pop_receipt, stored.dequeue_count))
        return _Pages(batch)

    def _check(self, message_id: str, pop_receipt: str | None) -> _Stored:
        stored = self.messages.get(message_id)
        if stored is None or stored.pop_receipt != pop_receipt:
            raise ResourceNotFoundError("pop receipt mismatch")
        return stored

    async def update_message(self, message: Any, pop_receipt: str | None = None, **kwargs: Any) -> Any:
        stored = self._check(message, pop_receipt)
        timeout = int(kwargs["visibility_timeout"])
        self.updates.append((message, timeout))
        stored.visible_at = time.monotonic() + timeout
        stored.pop_receipt = f"r{next(_receipts)}"
        return _Received(stored.id, stored.content, stored.pop_receipt, stored.dequeue_count)

    async def delete_message(self, message: Any, pop_receipt: str | None = None, **kwargs: Any) -> None:
        self._check(message, pop_receipt)
        del self.messages[message]

    async def send_message(self, content: Any, **kwargs: Any) -> None:
        self.add(str(content))

    def visible(self) -> list[_Stored]:
        now = time.monotonic()
        return [m for m in self.messages.values() if m.visible_at <= now]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def options(**overrides: Any) -> QueueOptions:
    values: dict[str, Any] = {
        "batch_size": 4, "new_batch_threshold": 1, "max_dequeue_count": 3,
        "visibility_timeout": 0.0, "max_polling_interval": 0.1, "message_encoding": "base64",
    }
    values.update(overrides)
    return QueueOptions(**values)


def listener(queue: FakeQueue, poison: FakeQueue, handler: Any, **kwargs: Any) -> QueueListener:
    return QueueListener(
        function_name="fn", queue=queue, poison_queue=poison, options=kwargs.pop("options", options()),
        handler=handler, **kwargs,
    )


async def run_until(target: QueueListener, condition: Any, timeout: float = 10) -> None:
    task = asyncio.create_task(target.run())
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
    target.stop()
    await task


async def test_success_deletes_and_passes_the_decoded_message() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add(b64("héllo"))
    seen: list[func.QueueMessage] = []

    async def handler(message: func.QueueMessage) -> None:
        seen.append(message)

    await run_until(listener(queue, poison, handler), lambda: not queue.messages)
    assert seen[0].get_body().decode() == "héllo"
    assert seen[0].dequeue_count == 1


async def test_failures_retry_then_poison_with_original_content() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add(b64("bad"))
    counts: list[int | None] = []

    async def handler(message: func.QueueMessage) -> None:
        counts.append(message.dequeue_count)
        raise RuntimeError("nope")

    await run_until(listener(queue, poison, handler), lambda: bool(poison.messages))
    assert counts == [1, 2, 3]
    assert not queue.messages
    assert [m.content for m in poison.messages.values()] == [b64("bad")]


async def test_visibility_timeout_delays_the_retry() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add(b64("x"))
    times: list[float] = []

    async def handler(message: func.QueueMessage) -> None:
        times.append(time.monotonic())
        raise RuntimeError("nope")

    target = listener(queue, poison, handler, options=options(visibility_timeout=1.0, max_dequeue_count=2))
    await run_until(target, lambda: bool(poison.messages))
    assert times[1] - times[0] >= 1.0
    assert ("m1", 1) in queue.updates


async def test_invalid_base64_is_a_failed_attempt_and_never_reaches_the_handler() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add("*** not base64 ***")
    called: list[bool] = []

    async def handler(message: func.QueueMessage) -> None:
        called.append(True)

    await run_until(listener(queue, poison, handler), lambda: bool(poison.messages))
    assert not called
    assert [m.content for m in poison.messages.values()] == ["*** not base64 ***"]


async def test_message_already_past_max_dequeue_count_is_poisoned_without_running() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add(b64("stale"), dequeue_count=3)  # the next receive makes it 4 > 3
    called: list[bool] = []

    async def handler(message: func.QueueMessage) -> None:
        called.append(True)

    await run_until(listener(queue, poison, handler), lambda: bool(poison.messages))
    assert not called


async def test_concurrency_is_batch_size_plus_threshold_at_most() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    for i in range(10):
        queue.add(b64(str(i)))
    state = {"now": 0, "peak": 0}

    async def handler(message: func.QueueMessage) -> None:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.05 + 0.01 * int(message.get_body()))
        state["now"] -= 1

    await run_until(listener(queue, poison, handler), lambda: not queue.messages)
    assert 4 <= state["peak"] <= 5  # batchSize 4 + newBatchThreshold 1


async def test_long_invocation_renews_its_lease_and_settles_with_the_new_receipt() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add(b64("long"))

    async def handler(message: func.QueueMessage) -> None:
        await asyncio.sleep(1.3)

    await run_until(listener(queue, poison, handler, lease_seconds=1), lambda: not queue.messages)
    renewals = [u for u in queue.updates if u == ("m1", 1)]
    assert len(renewals) >= 2  # every half lease; the delete used the latest receipt or it would fail


async def test_stop_abandons_in_flight_messages_so_they_are_visible_again() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")
    queue.add(b64("slow"))
    started = asyncio.Event()

    async def handler(message: func.QueueMessage) -> None:
        started.set()
        await asyncio.sleep(30)

    target = listener(queue, poison, handler, shutdown_grace=0.1)
    task = asyncio.create_task(target.run())
    await asyncio.wait_for(started.wait(), 5)
    target.stop()
    await asyncio.wait_for(task, 5)
    assert [m.id for m in queue.visible()] == ["m1"]
    assert ("m1", 0) in queue.updates


async def test_empty_queue_backs_off_up_to_max_polling_interval() -> None:
    queue, poison = FakeQueue("q"), FakeQueue("q-poison")

    async def handler(message: func.QueueMessage) -> None:
        return None

    target = listener(queue, poison, handler, options=options(max_polling_interval=0.4))
    task = asyncio.create_task(target.run())
    await asyncio.sleep(1.6)
    target.stop()
    await task
    # 0.1 + 0.2 + 0.4 + 0.4 + ... : about 5 polls in 1.6 s, far fewer than without backoff.
    assert 3 <= target.polls <= 7


def test_backoff_sequence() -> None:
    delays = [0.1]
    for _ in range(6):
        delays.append(next_polling_delay(delays[-1], 2.0))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_decode_body() -> None:
    assert decode_body(b64("abc"), "base64") == b"abc"
    assert decode_body("abc", "none") == b"abc"
    with pytest.raises(MessageDecodeError):
        decode_body("abc$", "base64")
