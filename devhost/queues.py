"""Queue trigger semantics: one listener per queue-triggered function.

This mirrors what the Functions host's queue extension does, because the
gateway's retry and poison handling relies on it:

* receive up to ``batchSize`` messages, each hidden for a lease (10 minutes,
  renewed at half-time while the invocation runs);
* run them concurrently and fetch the next batch once the number still in
  flight drops to ``newBatchThreshold``;
* delete a message when its invocation succeeds; on failure make it visible
  again after ``visibilityTimeout``, or move it to ``<queue>-poison`` once its
  dequeue count has reached ``maxDequeueCount``;
* decode bodies per ``messageEncoding`` (a body that is not valid base64 is a
  failed attempt and ends up in the poison queue);
* back off polling exponentially from 100 ms up to ``maxPollingInterval``
  while the queue is empty, and reset as soon as messages arrive.

On shutdown the listener stops fetching, gives in-flight invocations a grace
period and makes whatever is still running visible again, so another worker
(or the next start) picks it up immediately instead of after the lease.

The listener only talks to two queue clients and a handler, so it can be
exercised against fakes as well as Azurite.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import azure.functions as func
from azure.functions.queue import QueueMessage as WorkerQueueMessage

from devhost.hostjson import QueueOptions

logger = logging.getLogger("devhost.queues")

MIN_POLLING_INTERVAL = 0.1
DEFAULT_LEASE_SECONDS = 600

QueueHandler = Callable[[func.QueueMessage], Awaitable[None]]


_T = TypeVar("_T")


class _Abandoned(Exception):
    """A storage call was given up because the listener is stopping."""


class MessageDecodeError(ValueError):
    """The message body does not match the configured messageEncoding."""


class ReceivedMessage(Protocol):
    """The attributes of ``azure.storage.queue.QueueMessage`` that are used."""

    id: str
    content: Any
    pop_receipt: str | None
    dequeue_count: int | None
    inserted_on: Any
    expires_on: Any
    next_visible_on: Any


class AsyncQueue(Protocol):
    """The subset of ``azure.storage.queue.aio.QueueClient`` the listener needs."""

    queue_name: str

    async def create_queue(self, **kwargs: Any) -> Any: ...

    def receive_messages(self, **kwargs: Any) -> Any: ...

    async def update_message(self, message: Any, pop_receipt: str | None = None, **kwargs: Any) -> Any: ...

    async def delete_message(self, message: Any, pop_receipt: str | None = None, **kwargs: Any) -> Any: ...

    async def send_message(self, content: Any, **kwargs: Any) -> Any: ...


def decode_body(content: Any, encoding: str) -> bytes:
    """Message bytes as the function should see them."""
    if content is None:
        return b""
    if encoding == "base64":
        text = content.decode("ascii", "replace") if isinstance(content, bytes) else str(content)
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MessageDecodeError(f"message is not valid base64 ({exc})") from exc
    return content if isinstance(content, bytes) else str(content).encode("utf-8")


def to_function_message(message: ReceivedMessage, encoding: str) -> func.QueueMessage:
    """The ``func.QueueMessage`` a queue-triggered function receives."""
    return WorkerQueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=decode_body(message.content, encoding),
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


def next_polling_delay(current: float, maximum: float) -> float:
    """Exponential backoff between empty polls, capped at maxPollingInterval."""
    return min(max(current, MIN_POLLING_INTERVAL) * 2, max(maximum, MIN_POLLING_INTERVAL))


class _Lease:
    """Keeps one message invisible while its invocation runs.

    Every renewal returns a new pop receipt that later calls must use, so a
    renewal that is already on the wire is allowed to finish (shielded)
    before the message is settled.
    """

    def __init__(self, queue: AsyncQueue, message: ReceivedMessage, seconds: int) -> None:
        self.queue = queue
        self.message_id = message.id
        self.pop_receipt = message.pop_receipt
        self.seconds = seconds
        self._loop_task: asyncio.Task[None] | None = None
        self._pending: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.seconds / 2, 0.5))
            self._pending = asyncio.ensure_future(self._renew())
            await asyncio.shield(self._pending)

    async def _renew(self) -> None:
        try:
            updated = await self.queue.update_message(
                self.message_id, pop_receipt=self.pop_receipt, visibility_timeout=self.seconds
            )
            self.pop_receipt = updated.pop_receipt
        except Exception as exc:
            logger.warning(
                "could not renew the lease of message %s on %s: %s", self.message_id, self.queue.queue_name, exc
            )

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._pending is not None and not self._pending.done():
            with contextlib.suppress(Exception):
                await self._pending


class QueueListener:
    """Polls one queue and runs its function per message, with host semantics."""

    def __init__(
        self,
        *,
        function_name: str,
        queue: AsyncQueue,
        poison_queue: AsyncQueue,
        options: QueueOptions,
        handler: QueueHandler,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        shutdown_grace: float = 2.0,
    ) -> None:
        self.function_name = function_name
        self.queue = queue
        self.poison_queue = poison_queue
        self.options = options
        self.handler = handler
        self.lease_seconds = max(1, int(lease_seconds))
        self.shutdown_grace = shutdown_grace
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        self.polls = 0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def stop(self) -> None:
        """Stop fetching; ``run`` then drains and returns."""
        self._stopping.set()
        self._changed.set()

    async def run(self) -> None:
        """Poll until stopped, then settle or abandon what is in flight."""
        try:
            await self._prepare()
            await self._poll_loop()
        finally:
            await self._drain()

    async def _prepare(self) -> None:
        delay = MIN_POLLING_INTERVAL
        attempts = 0
        while not self._stopping.is_set():
            try:
                await self._unless_stopping(self._create_queues())
                return
            except _Abandoned:
                return
            except Exception as exc:
                attempts += 1
                level = logging.WARNING if attempts == 1 else logging.DEBUG
                logger.log(level, "queue %s is not reachable yet (%s); retrying", self.queue.queue_name, exc)
                await self._sleep(delay)
                delay = next_polling_delay(delay, self.options.max_polling_interval)

    async def _create_queues(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for queue in (self.queue, self.poison_queue):
            with contextlib.suppress(ResourceExistsError):
                await queue.create_queue()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _wait_for_capacity(self) -> None:
        while len(self._tasks) > self.options.new_batch_threshold and not self._stopping.is_set():
            self._changed.clear()
            await self._changed.wait()

    async def _receive(self) -> list[ReceivedMessage]:
        pages = self.queue.receive_messages(
            messages_per_page=self.options.batch_size,
            max_messages=self.options.batch_size,
            visibility_timeout=self.lease_seconds,
        ).by_page()
        batch: list[ReceivedMessage] = []
        async for page in pages:
            async for message in page:
                batch.append(message)
            break
        return batch

    async def _unless_stopping(self, operation: Awaitable[_T]) -> _T:
        """Await a storage call, but do not let an unreachable account hold up shutdown.

        Raises _Abandoned when the listener stopped and the call did not finish
        within a second: a healthy call takes milliseconds, so one still
        running is stuck in retries and has not dequeued anything.
        """
        call = asyncio.ensure_future(operation)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({call, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not call.done():
            await asyncio.wait({call}, timeout=1.0)
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await call
                raise _Abandoned()
        return call.result()

    async def _poll_loop(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        delay = MIN_POLLING_INTERVAL
        failing = False
        while not self._stopping.is_set():
            await self._wait_for_capacity()
            if self._stopping.is_set():
                return
            try:
                self.polls += 1
                batch = await self._unless_stopping(self._receive())
            except _Abandoned:
                return
            except ResourceNotFoundError:
                with contextlib.suppress(Exception):
                    await self._create_queues()
                batch = []
            except Exception as exc:
                if not failing:
                    logger.warning("polling queue %s failed (%s); backing off", self.queue.queue_name, exc)
                failing = True
                await self._sleep(delay)
                delay = next_polling_delay(delay, self.options.max_polling_interval)
                continue
            if failing:
                logger.info("polling queue %s works again", self.queue.queue_name)
                failing = False
            if batch and self._stopping.is_set():
                for message in batch:
                    await self._release(_Lease(self.queue, message, self.lease_seconds), 0)
                return
            if batch:
                delay = MIN_POLLING_INTERVAL
                for message in batch:
                    self._spawn(message)
                continue
            await self._sleep(delay)
            delay = next_polling_delay(delay, self.options.max_polling_interval)

    def _spawn(self, message: ReceivedMessage) -> None:
        task = asyncio.create_task(self._process(message), name=f"{self.function_name}:{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._changed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("queue message task failed", exc_info=task.exception())

    async def _process(self, message: ReceivedMessage) -> None:
        lease = _Lease(self.queue, message, self.lease_seconds)
        dequeue_count = message.dequeue_count or 1
        if dequeue_count > self.options.max_dequeue_count:
            # Already tried often enough (e.g. the worker died mid-invocation
            # every time): the host poisons such a message without running it.
            await asyncio.shield(self._poison(lease, message))
            return
        lease.start()
        try:
            succeeded = await self._invoke(message)
        except asyncio.CancelledError:
            await lease.stop()
            await asyncio.shield(self._abandon(lease))
            raise
        await lease.stop()
        if succeeded:
            await asyncio.shield(self._delete(lease))
        elif dequeue_count >= self.options.max_dequeue_count:
            await asyncio.shield(self._poison(lease, message))
        else:
            await asyncio.shield(self._release(lease, self.options.visibility_timeout_seconds))

    async def _invoke(self, message: ReceivedMessage) -> bool:
        try:
            function_message = to_function_message(message, self.options.message_encoding)
        except MessageDecodeError as exc:
            logger.error(
                "Executed 'Functions.%s' (Failed): message %s on queue %s: %s",
                self.function_name, message.id, self.queue.queue_name, exc,
            )
            return False
        try:
            await self.handler(function_message)
        except Exception:
            logger.debug("handler failed for message %s", message.id, exc_info=True)
            return False
        return True

    async def _delete(self, lease: _Lease) -> None:
        try:
            await self.queue.delete_message(lease.message_id, pop_receipt=lease.pop_receipt)
        except Exception as exc:
            logger.warning("could not delete message %s from %s: %s", lease.message_id, self.queue.queue_name, exc)

    async def _release(self, lease: _Lease, visibility_timeout: int) -> None:
        try:
            await self.queue.update_message(
                lease.message_id, pop_receipt=lease.pop_receipt, visibility_timeout=visibility_timeout
            )
        except Exception as exc:
            logger.warning("could not release message %s on %s: %s", lease.message_id, self.queue.queue_name, exc)

    async def _abandon(self, lease: _Lease) -> None:
        logger.info("abandoning message %s on %s (shutting down)", lease.message_id, self.queue.queue_name)
        await self._release(lease, 0)

    async def _poison(self, lease: _Lease, message: ReceivedMessage) -> None:
        logger.warning(
            "Message has reached MaxDequeueCount of %s. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            self.poison_queue.queue_name,
        )
        try:
            await self.poison_queue.send_message(message.content)
        except Exception as exc:
            logger.warning("could not move message %s to %s: %s", message.id, self.poison_queue.queue_name, exc)
            await self._release(lease, self.options.visibility_timeout_seconds)
            return
        await self._delete(lease)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        tasks = set(self._tasks)
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
