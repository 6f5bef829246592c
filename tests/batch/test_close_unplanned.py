"""A large batch ended before it was planned: its error file, streamed, holds every custom_id once, in order.

Against real Azurite with the same queue handler the trigger calls (``tests.batch.test_engine``'s
helpers). Memory is measured by hand in the bench, not here: this checks what was written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.batch.output import PART_LINES
from shared.jobs import blobs, layout
from shared.jobs.store import CANCELLING, QUEUED, RUNNING, now
from tests.batch.test_engine import chat_line, chat_models, deliver, engine, make_batch, row, step_message
from tests.jobs.harness import Pipeline

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="session")]
__all__ = ["chat_models", "engine"]  # fixtures, used by name

LINES = 100_000 + 17  # many small lines, the last part not full


async def _error_ids(p: Pipeline, ended: dict[str, Any]) -> list[str]:
    blob = blobs.blob_client(p.runtime.storage, p.runtime.container, layout.batch_errors_blob(ended["id"]))
    ids: list[str] = []
    async for line in blobs.iter_lines(blob):
        record = json.loads(line)
        assert record["response"] is None and record["error"]["code"] == "batch_cancelled", record
        ids.append(record["custom_id"])
    return ids


async def test_a_large_batch_cancelled_before_planning_lists_every_custom_id_once_in_order(
        engine: Pipeline) -> None:
    batch_id, token = await make_batch(engine, [chat_line(i, "x") for i in range(LINES)])
    assert await engine.runtime.store.transition(batch_id, {"status": CANCELLING, "cancelling_at": now()},
                                                 only_from=frozenset({QUEUED, RUNNING}))
    await deliver(step_message(batch_id, token, "close"))
    ended = {**await row(engine, batch_id), "id": batch_id}
    assert ended["status"] == "cancelled" and ended.get("output_file_id") is None
    assert int(getattr(ended["failed"], "value", ended["failed"])) == LINES
    assert await _error_ids(engine, ended) == [f"chat-{i}" for i in range(LINES)]
    blob = blobs.blob_client(engine.runtime.storage, engine.runtime.container, layout.batch_errors_blob(batch_id))
    committed, _ = await blob.get_block_list("committed")
    assert len(committed) == -(-LINES // PART_LINES)

    await deliver(step_message(batch_id, token, "close"))  # a second close changes nothing
    assert await _error_ids(engine, ended) == [f"chat-{i}" for i in range(LINES)]
