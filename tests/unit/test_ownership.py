"""Ownership records (shared/ownership.py) against an in-memory store: decisions, cache, failures.

The same behaviour through the running host, Azurite and two instances: tests/security/test_ownership.py.
"""

from __future__ import annotations

import asyncio

import pytest

from shared import ownership
from shared.errors import GatewayError
from shared.ownership import ResponseOwners


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.reads = 0
        self.down = False
        self.delay = 0.0

    async def _io(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise ConnectionError("storage down")

    async def insert(self, object_id: str, owner: str) -> str:
        await self._io()
        return self.rows.setdefault(object_id, owner)

    async def owner_of(self, object_id: str) -> str | None:
        self.reads += 1
        await self._io()
        return self.rows.get(object_id)

    async def delete(self, object_id: str) -> None:
        await self._io()
        self.rows.pop(object_id, None)


async def status_of(call: object) -> int:
    assert asyncio.iscoroutine(call)
    try:
        await call
    except GatewayError as exc:
        return exc.status
    return 200


async def test_only_the_creator_passes_and_strangers_see_not_found() -> None:
    store = MemoryStore()
    owners = ResponseOwners(store)
    await owners.record("resp_1", "key:a")
    assert await status_of(owners.require("key:a", "resp_1")) == 200
    assert await status_of(owners.require("key:b", "resp_1")) == 404
    assert await status_of(owners.require("key:a", "resp_never")) == 404
    for odd in ("resp_1/../x", "resp_1'", "", "resp_1#", "a" * 300):  # not an id: no storage call, 404
        store.down = True
        assert await status_of(owners.require("key:a", odd)) == 404


async def test_a_record_is_never_handed_over() -> None:
    store = MemoryStore()
    await ResponseOwners(store).record("resp_1", "key:a")
    with pytest.raises(GatewayError) as refused:
        await ResponseOwners(store).record("resp_1", "key:b")
    assert refused.value.status == 503
    assert store.rows["resp_1"] == "key:a"


async def test_hits_are_cached_misses_are_not() -> None:
    store = MemoryStore()
    store.rows["resp_1"] = "key:a"  # recorded by another instance
    owners = ResponseOwners(store)
    for _ in range(3):
        await owners.require("key:a", "resp_1")
    assert store.reads == 1
    for _ in range(2):
        await status_of(owners.require("key:a", "resp_2"))
    assert store.reads == 3, "a miss may be a record being written elsewhere: it is asked again"


async def test_the_cache_is_bounded() -> None:
    owners = ResponseOwners(MemoryStore(), cache_size=2)
    for n in range(5):
        await owners.record(f"resp_{n}", "key:a")
    assert len(owners._cache) == 2


async def test_storage_down_answers_503_with_retry_after_but_cached_owners_still_hold() -> None:
    store = MemoryStore()
    owners = ResponseOwners(store)
    await owners.record("resp_known", "key:a")
    store.down = True
    for caller, object_id in (("key:a", "resp_other"), ("key:b", "resp_other")):
        with pytest.raises(GatewayError) as refused:
            await owners.require(caller, object_id)
        assert refused.value.status == 503 and int(refused.value.headers["retry-after"]) > 0
    await owners.require("key:a", "resp_known")
    assert await status_of(owners.require("key:b", "resp_known")) == 404
    assert await status_of(owners.record("resp_new", "key:a")) == 503


async def test_a_hanging_store_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ownership, "STORAGE_TIMEOUT_SECONDS", 0.05)
    store = MemoryStore()
    store.delay = 5.0
    assert await status_of(ResponseOwners(store).require("key:a", "resp_1")) == 503


async def test_no_storage_configured_fails_closed() -> None:
    owners = ResponseOwners(None)
    assert await status_of(owners.require("key:a", "resp_1")) == 503
    assert await status_of(owners.record("resp_1", "key:a")) == 503


async def test_forget_drops_the_record_and_survives_a_storage_failure() -> None:
    store = MemoryStore()
    owners = ResponseOwners(store)
    await owners.record("resp_1", "key:a")
    await owners.forget("resp_1")
    assert "resp_1" not in store.rows
    assert await status_of(owners.require("key:a", "resp_1")) == 404
    await owners.record("resp_2", "key:a")
    store.down = True
    await owners.forget("resp_2")  # logged, not raised: the upstream delete already happened


async def test_a_background_record_finishes_after_its_stream_is_gone() -> None:
    store = MemoryStore()
    store.delay = 0.01
    owners = ResponseOwners(store)
    task = owners.start_record("resp_1", "key:a")
    assert owners._writes == {task}
    await task
    assert store.rows == {"resp_1": "key:a"} and not owners._writes
