"""The poison queue's trigger: keep every poisoned message and fail its job with a readable reason.

Messages arrive here two ways: the host moves one after ``maxDequeueCount`` failed deliveries, and
the job trigger moves an invalid one at once. Either way the body is copied verbatim to
``poison/{message id}.json`` in the jobs container (nothing is lost; the poison queue itself
expires messages after 7 days), and the job it provably belongs to (``shared.jobs.proof``), if
any, ends ``failed``: with the reason already recorded when the job trigger rejected it, else with
the last error seen on the job. A message that merely mentions a job id leaves that job alone.
"""

from __future__ import annotations

import json
import logging

from shared.config import get_settings
from shared.jobs import layout, strays
from shared.jobs.finalize import close_incomplete
from shared.jobs.queue_trigger import provable_job, sniff_job_id
from shared.jobs.runtime import get_runtime
from shared.jobs.store import FAILED

logger = logging.getLogger("gateway.jobs")


async def handle_poison(body: bytes, message_id: str) -> None:
    from azure.storage.blob import ContentSettings

    rt = await get_runtime()
    await strays.sweep(rt, get_settings().jobs_queue, force=True)
    job_id, _ = await provable_job(body)
    name = layout.poison_blob(message_id)
    blob = rt.storage.blob.get_blob_client(rt.container, name)
    await blob.upload_blob(body, overwrite=True, metadata={"job_id": job_id or ""},
                           content_settings=ContentSettings(content_type="application/json"))
    logger.warning(json.dumps({"event": "message_poisoned", "message_id": message_id, "job_id": job_id,
                               "mentions": sniff_job_id(body), "blob": f"{rt.container}/{name}"}))
    if job_id is None:
        return
    row = await rt.store.get_row(job_id)
    last_error = (row or {}).get("last_error")
    reason = (f"A message of this job failed repeatedly and was moved to the poison queue "
              f"(kept as blob '{rt.container}/{name}')." + (f" Last error: {last_error}" if last_error else ""))
    # Its finished lines stay readable (finalize.close_incomplete); a job not yet recorded is created failed.
    failed_now = await close_incomplete(rt, job_id, status=FAILED, code="message_poisoned", message=reason,
                                        poison_blob=name) \
        or await rt.store.fail(job_id, "message_poisoned", reason, poison_blob=name)
    if not failed_now and row is not None and row.get("status") == FAILED:
        await rt.store.merge(job_id, {"poison_blob": name})
