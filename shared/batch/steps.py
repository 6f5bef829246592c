"""A batch message (``type: "batch"``): ``plan`` the batch, or ``close`` it.

``close`` is asked for by the batch service when a caller cancels (the row is already
``cancelling``) or when it reads a batch past its window; the close itself decides from the row
(``shared.batch.finish.close_batch``), so an early or repeated close message changes nothing.
"""

from __future__ import annotations

from shared.batch.finish import close_batch
from shared.batch.planner import plan_batch
from shared.jobs import proof
from shared.jobs.messages import BatchMessage
from shared.jobs.runtime import Runtime
from shared.jobs.store import BATCH_KIND, KIND_FIELD


async def run_batch_step(rt: Runtime, message: BatchMessage) -> None:
    if message.action == "plan":
        await plan_batch(rt, message)
        return
    row = await rt.store.get_row(message.id)
    if row is None or row.get(KIND_FIELD) != BATCH_KIND or not proof.proves(row, message.token):
        raise proof.Unproven(f"a close message for {message.id} does not carry the token of an existing batch")
    await close_batch(rt, message.id)
