"""The job pipeline's handles on storage, built once per process.

The container, table and queue are created on first use (idempotently) rather than by
infrastructure alone, so a fresh Azurite or a new account works without a setup step; after the
first success in a process the check is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.config import get_settings
from shared.jobs.store import JobStore
from shared.lazy import on_forget
from shared.storage import StorageClients, get_storage

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient


@dataclass(frozen=True, slots=True)
class Runtime:
    storage: StorageClients
    store: JobStore
    container: str
    queue: QueueClient
    poison_queue: QueueClient


_runtime: Runtime | None = None
_ready = False
_lock: asyncio.Lock | None = None


def poison_queue_name(queue: str) -> str:
    return f"{queue}-poison"


async def ensure_resources(storage: StorageClients, container: str, table: str, queues: tuple[str, ...]) -> None:
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        await storage.blob.create_container(container)
    await storage.table.create_table_if_not_exists(table)
    for name in queues:
        with contextlib.suppress(ResourceExistsError):
            await storage.queue.create_queue(name)


async def get_runtime() -> Runtime:
    """Storage handles for the jobs pipeline, resources created on the first call in this process."""
    global _runtime, _ready, _lock
    if _runtime is None:
        settings = get_settings()
        storage = get_storage()
        _runtime = Runtime(
            storage=storage,
            store=JobStore(storage.table.get_table_client(settings.jobs_table)),
            container=settings.jobs_container,
            queue=storage.queue.get_queue_client(settings.jobs_queue),
            poison_queue=storage.queue.get_queue_client(poison_queue_name(settings.jobs_queue)),
        )
    if not _ready:
        if _lock is None:
            _lock = asyncio.Lock()
        async with _lock:
            if not _ready:
                settings = get_settings()
                await ensure_resources(_runtime.storage, settings.jobs_container, settings.jobs_table,
                                       (settings.jobs_queue, poison_queue_name(settings.jobs_queue)))
                _ready = True
    return _runtime


def reset_runtime() -> None:
    """Forget the process-wide handles (tests)."""
    global _runtime, _ready, _lock
    _runtime, _ready, _lock = None, False, None


# Not @process_wide: the handles are ready only once the resources exist, which takes an await.
on_forget(reset_runtime)
