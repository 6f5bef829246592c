"""What the queue trigger does with one delivered message.

* Invalid message (schema, unknown model, unreadable input blob): retrying cannot help, so it is
  not retried: the job (when the message names one) is marked failed with the reason, and the
  message is moved to the poison queue at once, where the poison trigger keeps a copy.
* Throttled for longer than a function should wait: the message goes back on the queue with a
  visibility delay (a new copy, this delivery completes), so no instance sits idle in a sleep.
* A failure the upstream says is final (401/403/404): the job is marked failed.
* Anything else (storage or upstream unavailable, a crash): recorded on the job row and raised, so
  the host redelivers after ``visibilityTimeout`` and, after ``maxDequeueCount`` tries, poisons it.
"""

from __future__ import annotations

import json
import logging
import random
import re

from pydantic import ValidationError

from shared.jobs import enqueue, messages
from shared.jobs.embed import JobFailed
from shared.jobs.ids import is_job_id
from shared.jobs.pacer import Throttled, get_pacer
from shared.jobs.planner import InvalidJob, plan
from shared.jobs.runtime import Runtime, get_runtime
from shared.jobs.store import clip, now
from shared.jobs.worker import run_chunk

logger = logging.getLogger("gateway.jobs")

# A chunk handed back this often (each time for the wait the upstream asked) fails the normal way.
MAX_DEFERRALS = 100
_JOB_ID = re.compile(rb"ejob_[0-9a-f]{32}")


def sniff_job_id(body: bytes) -> str | None:
    """The job id a message carries, even when the message is otherwise broken."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and is_job_id(data.get("id")):
        return str(data["id"])
    match = _JOB_ID.search(body)
    return match.group(0).decode() if match else None


def describe(exc: ValidationError) -> str:
    """A readable one-line reason: the first problems with where they are."""
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in error["loc"] if p not in ("job", "chunk")) or "message"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "invalid message (" + "; ".join(parts) + (f"; and {more} more" if more > 0 else "") + ")"


async def handle_message(body: bytes, message_id: str, dequeue_count: int) -> None:
    try:
        message = messages.parse(body)
    except ValidationError as exc:
        await reject(body, message_id, "invalid_message", describe(exc))
        return
    rt = await get_runtime()
    try:
        if isinstance(message, messages.JobMessage):
            await plan(rt, message)
        else:
            await run_chunk(rt, message, get_pacer(message.model))
    except InvalidJob as exc:
        await reject(body, message_id, "invalid_job", str(exc))
    except JobFailed as exc:
        await rt.store.fail(message.id, exc.code, exc.message)
    except Throttled as exc:
        await defer(rt, message, exc.wait)
    except Exception as exc:
        await _note_error(rt, message.id, message_id, dequeue_count, exc)
        raise


async def reject(body: bytes, message_id: str, code: str, reason: str) -> None:
    """Fail the job (if named) and move the message to the poison queue now."""
    rt = await get_runtime()
    job_id = sniff_job_id(body)
    logger.warning(json.dumps({"event": "message_rejected", "message_id": message_id, "job_id": job_id,
                               "reason": reason}))
    if job_id is not None:
        await rt.store.fail(job_id, code, reason)
    await enqueue.send_raw(rt.poison_queue, body)


async def defer(rt: Runtime, message: messages.JobMessage | messages.ChunkMessage, wait: float) -> None:
    if not isinstance(message, messages.ChunkMessage):  # pragma: no cover - planning never calls upstream
        raise RuntimeError("only chunk messages are throttled")
    if message.deferrals >= MAX_DEFERRALS:
        raise RuntimeError(f"chunk {message.chunk} was throttled {message.deferrals} times; giving up")
    # A little jitter so that chunks handed back together (here and on other instances) do not all
    # return in the same instant; small, because every second of it is throughput lost.
    delay = wait + random.uniform(0.0, min(2.0, 0.05 * wait + 0.25))
    again = message.model_copy(update={"deferrals": message.deferrals + 1})
    await enqueue.send(rt.queue, messages.to_json(again), delay=delay)


async def _note_error(rt: Runtime, job_id: str, message_id: str, dequeue_count: int, exc: Exception) -> None:
    """Keep the latest failure on the job row, so the poison trigger can say why."""
    reason = f"{type(exc).__name__}: {exc}"
    logger.warning(json.dumps({"event": "message_failed", "job_id": job_id, "message_id": message_id,
                               "dequeue_count": dequeue_count, "error": reason[:500]}))
    try:
        await rt.store.merge(job_id, {"last_error": clip(reason), "last_error_at": now()})
    except Exception:  # storage may be what failed; the error is logged above either way
        logger.debug("could not record the error on job %s", job_id, exc_info=True)
