"""Per-caller tokens-per-minute limits (like API Management's token-limit policy).

Before a call the gateway reserves an estimate (request bytes / 4 for the prompt, plus the
requested maximum output or, without one, ``CALLER_OUTPUT_TOKEN_ALLOWANCE``); after it, the
reservation is settled with what the call used (see ``shared.gateway``). Over the limit, the caller
gets 429 with ``retry-after`` and never reaches the upstream.

A reservation is admitted only if it fits next to everything already counted, settled use and the
reservations of calls still in flight, so a caller overshoots only by what its in-flight calls use
beyond their reservations. Use beyond a reservation is charged when it is known, in the minute it
becomes known (a long stream's excess is not lost in a minute that has left the window).

Counting is a sliding minute approximated by two fixed buckets (this minute, plus last minute's
weighted by how much of it is still inside the window), which is exact at a steady rate and within
a few percent under bursts. Across instances, each instance writes its own counts to Table storage
(one entity per caller, minute and instance, so writers never contend) and reads the other
instances' counts at most once per ``SYNC_SECONDS`` per caller: a caller can overshoot by what the
other instances admitted since their last sync. If storage is unreachable, limits hold per instance
(fail open to the per-instance view rather than refuse traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.errors import caller_limit_too_small, caller_over_limit
from shared.lazy import process_wide

SYNC_SECONDS = 1.0
MAX_HELD = 10_000
TABLE = "callerusage"
logger = logging.getLogger("gateway.quota")


class UsageStore(Protocol):
    async def write(self, caller: str, minute: int, instance: str, tokens: int) -> None: ...
    async def read_others(self, caller: str, minute: int, instance: str) -> int: ...


@dataclass(slots=True)
class Reservation:
    """Tokens counted for one call: its estimate until settled, then what it used."""

    caller: str
    minute: int
    tokens: int


@dataclass(slots=True)
class CallerQuota:
    limit: int
    store: UsageStore | None = None
    clock: Callable[[], float] = time.time
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _local: dict[tuple[str, int], int] = field(default_factory=dict)
    _others: dict[tuple[str, int], int] = field(default_factory=dict)
    _synced_at: dict[str, float] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Background responses still generating upstream, by response id: settled when seen finished.
    _held: OrderedDict[str, Reservation] = field(default_factory=OrderedDict)

    def _total(self, caller: str, minute: int) -> int:
        return self._local.get((caller, minute), 0) + self._others.get((caller, minute), 0)

    def used(self, caller: str) -> float:
        now = self.clock()
        minute = int(now // 60)
        inside = 1.0 - (now % 60) / 60.0
        return self._total(caller, minute) + self._total(caller, minute - 1) * inside

    def remaining(self, caller: str) -> int:
        return max(0, int(self.limit - self.used(caller)))

    def _wait_for(self, caller: str, tokens: int) -> float:
        """Seconds until ``tokens`` more would fit in the sliding minute."""
        now = self.clock()
        minute = int(now // 60)
        current, previous = self._total(caller, minute), self._total(caller, minute - 1)
        into_minute = now % 60
        room = self.limit - current - tokens
        if room < 0:
            # Only the next minute helps: this minute's count then fades out as the window slides.
            return 60.0 - into_minute + 60.0 * max(0.0, 1.0 - (self.limit - tokens) / current)
        # This minute has room; wait until enough of last minute's count has slid out of the window.
        return max(0.0, 60.0 * (1.0 - room / previous) - into_minute) if previous else 0.0

    def reserve(self, caller: str, tokens: int) -> Reservation:
        if tokens > self.limit:
            raise caller_limit_too_small(tokens, self.limit)
        if self.used(caller) + tokens > self.limit:
            raise caller_over_limit(self.limit, self._wait_for(caller, tokens))
        minute = int(self.clock() // 60)
        key = (caller, minute)
        self._local[key] = self._local.get(key, 0) + tokens
        self._schedule_sync(caller)
        return Reservation(caller, minute, tokens)

    def settle(self, reservation: Reservation, actual: int | None) -> None:
        """Replace what the reservation counts with ``actual`` (``None``: the estimate stands).

        A refund comes off the minute the reservation was counted in; use beyond it is added to
        the current minute, where the window still sees it. Settling again replaces the last value.
        """
        if actual is None:
            return
        change = actual - reservation.tokens
        if change < 0:
            key = (reservation.caller, reservation.minute)
            if key in self._local:
                self._local[key] = max(0, self._local[key] + change)
        elif change > 0:
            key = (reservation.caller, int(self.clock() // 60))
            self._local[key] = self._local.get(key, 0) + change
        reservation.tokens = actual
        self._schedule_sync(reservation.caller)

    def hold(self, response_id: str, reservation: Reservation) -> None:
        """Keep a background response's reservation until :meth:`settle_held` sees it finished.

        Per instance and bounded (the oldest are dropped): a response never seen finished keeps
        its reservation, which is never less than its estimate.
        """
        self._held[response_id] = reservation
        self._held.move_to_end(response_id)
        while len(self._held) > MAX_HELD:
            self._held.popitem(last=False)

    def settle_held(self, response_id: str, actual: int) -> bool:
        """Settle a held background response with its final usage; False when none is held."""
        reservation = self._held.pop(response_id, None)
        if reservation is None:
            return False
        self.settle(reservation, actual)
        return True

    def _schedule_sync(self, caller: str) -> None:
        if self.store is None or self.clock() - self._synced_at.get(caller, 0.0) < SYNC_SECONDS:
            return
        self._synced_at[caller] = self.clock()
        task = asyncio.get_running_loop().create_task(self.sync(caller))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync(self, caller: str) -> None:
        """Publish this instance's counts and learn the others' (this minute and the last)."""
        if self.store is None:
            return
        minute = int(self.clock() // 60)
        try:
            for m in (minute - 1, minute):
                if (caller, m) in self._local:
                    await self.store.write(caller, m, self.instance, self._local[(caller, m)])
                self._others[(caller, m)] = await self.store.read_others(caller, m, self.instance)
        except Exception as exc:
            logger.warning("caller usage sync failed (%s); limits hold per instance until it recovers", exc)
        self._forget_before(minute - 1)

    def _forget_before(self, minute: int) -> None:
        for table in (self._local, self._others):
            for key in [k for k in table if k[1] < minute]:
                del table[key]


class TableUsageStore:
    """Counts in Table storage: PartitionKey ``<caller>|<minute>``, RowKey = instance id."""

    def __init__(self, table_client: Any) -> None:
        self.table = table_client
        self._created = False

    async def _ensure(self) -> None:
        if not self._created:
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                await self.table.create_table()
            self._created = True

    async def write(self, caller: str, minute: int, instance: str, tokens: int) -> None:
        await self._ensure()
        await self.table.upsert_entity({"PartitionKey": f"{caller}|{minute}", "RowKey": instance, "tokens": tokens})

    async def read_others(self, caller: str, minute: int, instance: str) -> int:
        await self._ensure()
        total = 0
        entities = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": f"{caller}|{minute}"},
                                             select=["RowKey", "tokens"])
        async for entity in entities:
            if entity["RowKey"] != instance:
                total += int(entity.get("tokens", 0))
        return total


@process_wide
def get_quota() -> CallerQuota | None:
    """The process's quota keeper, or None when ``CALLER_TOKENS_PER_MINUTE`` is off."""
    from shared.config import get_settings

    limit = get_settings().caller_tokens_per_minute
    if limit <= 0:
        return None
    store: UsageStore | None = None
    try:
        from shared.storage import get_storage

        store = TableUsageStore(get_storage().table.get_table_client(TABLE))
    except Exception as exc:  # no storage configured: limits per instance only
        logger.warning("caller limits without shared storage (%s)", exc)
    return CallerQuota(limit, store=store)
