"""Messages the host could not even hand over: swept from ``<queue>-poison-poison`` into ``poison/``.

The host base64-decodes every queue message before any function sees it (``messageEncoding``). A
message that is not base64 therefore fails on the jobs queue without our code running, is moved to
the poison queue, fails there the same way, and lands in ``<queue>-poison-poison``, which nothing
triggers on. So the job pipeline sweeps that queue itself: each message found is copied, exactly as
stored, to ``poison/{message id}.json`` (base64-decoded first when it is base64 after all, e.g. a
poison message whose handler kept crashing), logged with its reason, and deleted. A sweep runs with
every poison-queue message and at most once a minute per instance while jobs run, so a stray waits
at most until the next job activity (there is no timer trigger in the local host to do better).
Such a message can belong to no job provably (it has no readable body), so no job is touched.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time

from shared.jobs import layout
from shared.jobs.runtime import Runtime, poison_queue_name

logger = logging.getLogger("gateway.jobs")

SWEEP_EVERY_SECONDS = 60.0
BATCH = 32
_last_sweep = 0.0


def stray_queue_name(queue: str) -> str:
    return poison_queue_name(poison_queue_name(queue))


def stored_bytes(content: str) -> tuple[bytes, str]:
    """(the bytes to keep, why the message strayed) for a message's stored text."""
    try:
        return base64.b64decode("".join(content.split()), validate=True), "its handler kept failing"
    except (binascii.Error, ValueError):
        return content.encode("utf-8", "surrogateescape"), "not base64, so the host could not decode it"


async def sweep(rt: Runtime, queue_name: str, *, force: bool = False) -> int:
    """Move what sits on the stray queue into ``poison/``; returns how many messages were kept."""
    global _last_sweep
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import ContentSettings

    now = time.monotonic()
    if not force and now - _last_sweep < SWEEP_EVERY_SECONDS:
        return 0
    _last_sweep = now
    strays = rt.storage.queue.get_queue_client(stray_queue_name(queue_name))
    kept = 0
    try:
        async for message in strays.receive_messages(max_messages=BATCH, visibility_timeout=60):
            body, reason = stored_bytes(message.content if isinstance(message.content, str) else "")
            name = layout.poison_blob(message.id)
            await rt.storage.blob.get_blob_client(rt.container, name).upload_blob(
                body, overwrite=True, metadata={"job_id": "", "strayed": "true"},
                content_settings=ContentSettings(content_type="application/octet-stream"))
            logger.warning(json.dumps({"event": "message_poisoned", "message_id": message.id, "job_id": None,
                                       "blob": f"{rt.container}/{name}", "reason": reason,
                                       "from": strays.queue_name}))
            with contextlib.suppress(ResourceNotFoundError):
                await strays.delete_message(message)
            kept += 1
            if kept >= BATCH:
                break
    except ResourceNotFoundError:  # no stray queue: nothing ever strayed
        return kept
    return kept
