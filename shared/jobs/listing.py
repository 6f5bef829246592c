"""One caller's embedding jobs or batches, newest first, in pages: the owner index, never a table scan.

Every owned job and batch has an entry in its owner's index partition (``layout.owner_partition``),
keyed by kind, inverted creation time and id (``store.index_key``). A page is one partition query
of ``limit + 1`` entries after the cursor's own key (``$top``; the extra one tells ``has_more``),
then one point read per entry, so a list costs the caller's own rows whatever else the table holds.

An entry is only a pointer: it is written before its row, and the sweeper deletes it after the row.
So an entry is listed only when its row exists, is the caller's, of this kind, not expired
(``retention.is_expired``, as ``status`` answers) and names this very entry; any other is skipped
and the next entries fill the page. ``after`` is a RowKey bound: a job created between two pages
sorts before the cursor and cannot shift, repeat or hide the older ones.

Rows written before the index existed (before this version) have no entry: they stay readable by
id and are not listed; they expire with ``DATA_RETENTION_DAYS`` like every other row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import invalid_query_parameter
from shared.jobs import access, ids, layout, retention
from shared.jobs.runtime import Runtime
from shared.jobs.store import INDEX_ID_FIELD, TERMINAL, JobState, index_key, index_kind
from shared.query_params import QueryValue

# Items per page when the caller names no ``limit`` (OpenAI's lists default to 20).
DEFAULT_PAGE = 20
JOB_KIND = "job"
View = Callable[[str, JobState], dict[str, Any]]


def _listable(row: Mapping[str, Any] | None, caller: str, kind: str, item_id: str) -> bool:
    """The caller's own unexpired row of this kind (an entry is checked further against its key)."""
    return (row is not None and access.owns(row, caller) and index_kind(row) == kind
            and not retention.is_expired(row) and index_key(item_id, row) is not None)


async def _cursor(rt: Runtime, caller: str, kind: str, after: str, noun: str) -> str:
    """The index RowKey of ``after``; one 400 for unknown, another caller's, expired or the wrong kind."""
    shaped = ids.is_batch_id(after) if kind != JOB_KIND else ids.is_job_id(after)
    row = await rt.store.get_row(after) if shaped else None
    if row is None or not _listable(row, caller, kind, after):
        raise invalid_query_parameter("after", f"not the id of one of your {noun}")
    key = index_key(after, row)
    assert key is not None  # _listable checked
    return key[1]


async def _page_rows(rt: Runtime, caller: str, kind: str, after_key: str | None,
                     wanted: int) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``wanted`` listable (id, row), newest first, read an index page at a time."""
    found: list[tuple[str, dict[str, Any]]] = []
    partition = layout.owner_partition(caller)
    pages = rt.store.owner_index(caller, kind, after=after_key, per_page=wanted)
    async for page in pages:
        entries = [entry async for entry in page]
        named = [(str(entry.get(INDEX_ID_FIELD)), str(entry["RowKey"])) for entry in entries]
        named = [(item_id, key) for item_id, key in named if ids.is_engine_id(item_id)]
        rows = await asyncio.gather(*(rt.store.get_row(item_id) for item_id, _ in named))
        for (item_id, key), row in zip(named, rows, strict=True):
            if _listable(row, caller, kind, item_id) and index_key(item_id, row or {}) == (partition, key):
                assert row is not None  # _listable checked
                found.append((item_id, row))
        if len(found) >= wanted:
            return found[:wanted]
    return found


async def _current(rt: Runtime, item_id: str, row: dict[str, Any]) -> JobState:
    """A listed item as its own GET shows it: an ended one's row has its totals, a running one needs its chunks."""
    if JobState(row).status in TERMINAL:
        return JobState(row)
    return await rt.store.load(item_id) or JobState(row)


async def owned_list(rt: Runtime, caller: str, query: Mapping[str, QueryValue], *, kind: str, noun: str,
                     view: View) -> dict[str, Any]:
    """The list body (``data``, ``first_id``, ``last_id``, ``has_more``, as OpenAI's lists) of the caller's
    items of ``kind`` (``"job"`` or ``"batch"``), each shown by ``view``; ``limit`` and ``after`` from ``query``."""
    limit = query.get("limit", DEFAULT_PAGE)
    after = query.get("after")
    assert isinstance(limit, int) and (after is None or isinstance(after, str))
    after_key = None if after is None else await _cursor(rt, caller, kind, after, noun)
    rows = await _page_rows(rt, caller, kind, after_key, limit + 1)
    page = rows[:limit]
    states = await asyncio.gather(*(_current(rt, item_id, row) for item_id, row in page))
    data = [view(item_id, state) for (item_id, _), state in zip(page, states, strict=True)]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(rows) > limit}

