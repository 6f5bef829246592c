"""Who created each stored response, so that only its creator can read, delete or continue it.

The upstream stores responses per Azure OpenAI account, not per caller: every caller of the
gateway shares one account, so without this record anyone holding a response id could read the
conversation (GET), destroy it (DELETE) or read it back by continuing it (``previous_response_id``).

- **Recorded at creation.** When a create with ``store`` (the default) succeeds, the gateway writes
  ``response id -> caller`` (``ctx.caller``, a digest of the function key or the Entra principal).
  The row is insert-only: a record can never be re-pointed at another caller.
- **Checked on every use.** Any other caller, and any id the gateway never recorded (created
  straight on the upstream, or before this record existed), gets the same 404 as an id that does
  not exist: a caller learns nothing about other callers' objects.
- **Shared across instances.** Records live in Table storage (``responseowners``: PartitionKey =
  response id, one row), so the instance that answers does not need to be the one that created.
- **Fails closed.** When storage cannot answer, the gateway refuses with 503 + ``retry-after``
  instead of guessing; a record it could not write leaves the response unreachable, never open.

Cost: one Table insert per stored create (after the upstream answered; for streams it overlaps the
relay and is only awaited at the end), and one point read per use of an id this instance has not
seen yet. Ownership never changes, so hits are cached in process (bounded LRU) and cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections import OrderedDict
from typing import Any, Protocol

from shared.errors import GatewayError, ownership_unavailable, response_not_found
from shared.lazy import process_wide

TABLE = "responseowners"
ROW = "owner"
CACHE_SIZE = 10_000
# Storage is on the request's path: a dead account must cost a caller seconds, not the SDK's minutes.
STORAGE_TIMEOUT_SECONDS = 3.0
RETRY_AFTER_SECONDS = 5.0

# The upstream's ids are plain (resp_ + letters, digits, '-', '_'); anything else was never recorded.
_RECORDABLE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")

logger = logging.getLogger("gateway.ownership")


class OwnershipUnavailable(Exception):
    """Storage could not say (or record) who owns a response."""


class OwnerStore(Protocol):
    async def insert(self, object_id: str, owner: str) -> str:
        """Record ``owner`` unless a record exists; return the owner on record afterwards."""
        ...

    async def owner_of(self, object_id: str) -> str | None: ...
    async def delete(self, object_id: str) -> None: ...


def storage_unavailable() -> GatewayError:
    return ownership_unavailable(math.ceil(RETRY_AFTER_SECONDS))


class ResponseOwners:
    """The ownership records of one process: a Table store behind a positive-only LRU cache.

    Only hits are cached: a miss may be a record another instance is writing right now.
    """

    def __init__(self, store: OwnerStore | None, cache_size: int = CACHE_SIZE) -> None:
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._writes: set[asyncio.Task[None]] = set()

    def _remember(self, object_id: str, owner: str) -> None:
        self._cache[object_id] = owner
        self._cache.move_to_end(object_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _owner(self, object_id: str) -> str | None:
        cached = self._cache.get(object_id)
        if cached is not None:
            self._cache.move_to_end(object_id)
            return cached
        if self.store is None:
            raise OwnershipUnavailable("no storage is configured")
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS):
                owner = await self.store.owner_of(object_id)
        except Exception as exc:
            logger.warning("ownership lookup failed: %s", exc)
            raise OwnershipUnavailable(str(exc)) from exc
        if owner is not None:
            self._remember(object_id, owner)
        return owner

    async def require(self, caller: str, object_id: str, *, param: str = "response_id",
                      code: str = "not_found") -> None:
        """Return only if ``caller`` created ``object_id``; 404 otherwise, 503 if storage cannot say."""
        if not _RECORDABLE_ID.fullmatch(object_id):  # never recorded, and no business in a Table key
            raise response_not_found(object_id, param=param, code=code)
        try:
            owner = await self._owner(object_id)
        except OwnershipUnavailable:
            raise storage_unavailable() from None
        if owner != caller:
            raise response_not_found(object_id, param=param, code=code)

    async def record(self, object_id: str, owner: str) -> None:
        """Record ``owner`` as the creator of a new ``object_id``; 503 when storage cannot."""
        if self.store is None:
            raise storage_unavailable()
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS):
                recorded = await self.store.insert(object_id, owner)
        except Exception as exc:
            logger.warning("ownership record failed: %s", exc)
            raise storage_unavailable() from exc
        if recorded != owner:
            # Ids are the upstream's and unique: a clash means something is wrong, never a hand-over.
            logger.error("response id %s is already recorded for another caller", object_id)
            raise storage_unavailable()
        self._remember(object_id, owner)

    def start_record(self, object_id: str, owner: str) -> asyncio.Task[None]:
        """``record`` in the background (streams relay on meanwhile); finishes even if the caller leaves."""
        task = asyncio.get_running_loop().create_task(self.record(object_id, owner))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def forget(self, object_id: str) -> None:
        """Drop the record of a deleted response (best effort: a stale record grants nothing new)."""
        self._cache.pop(object_id, None)
        if self.store is None:
            return
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_SECONDS):
                await self.store.delete(object_id)
        except Exception as exc:
            logger.warning("ownership record of a deleted response kept: %s", exc)


class TableOwnerStore:
    """Records in Table storage: PartitionKey = object id, RowKey ``owner``, property ``caller``."""

    def __init__(self, table_client: Any) -> None:
        self.table = table_client

    async def insert(self, object_id: str, owner: str) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        entity = {"PartitionKey": object_id, "RowKey": ROW, "caller": owner}
        try:
            await self._create(entity)
        except ResourceNotFoundError:  # first write ever: the table itself is missing
            with contextlib.suppress(ResourceExistsError):
                await self.table.create_table()
            await self._create(entity)
        except ResourceExistsError:
            recorded = await self.owner_of(object_id)
            return recorded or ""
        return owner

    async def _create(self, entity: dict[str, str]) -> None:
        # One retry, not the client's three: the caller is waiting and the timeout above bounds it.
        await self.table.create_entity(entity, retry_total=1)

    async def owner_of(self, object_id: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await self.table.get_entity(object_id, ROW, select=["caller"], retry_total=1)
        except ResourceNotFoundError:  # no such row, or no table yet: never recorded
            return None
        caller = entity.get("caller")
        return caller if isinstance(caller, str) else None

    async def delete(self, object_id: str) -> None:
        await self.table.delete_entity(object_id, ROW, retry_total=1)


@process_wide
def get_owners() -> ResponseOwners:
    """The process's ownership records; without configured storage every check answers 503."""
    store: OwnerStore | None = None
    try:
        from shared.storage import get_storage

        store = TableOwnerStore(get_storage().table.get_table_client(TABLE))
    except Exception as exc:
        logger.warning("stored responses are unreachable: no storage for ownership records (%s)", exc)
    return ResponseOwners(store)
