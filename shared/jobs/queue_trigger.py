"""What the queue trigger does with one delivered message.

* Invalid message (schema, unknown model, unreadable or forbidden input blob, a chunk whose model
  ``OPENAI_MODELS`` no longer allows): retrying cannot help, so it is not retried: the job is marked
  failed with the reason when the message provably belongs to it (``shared.jobs.proof``), and the
  message is moved to the poison queue at once, where the poison trigger keeps a copy.
* A message that cannot prove it belongs to the job it names: moved to the poison queue, the job
  left alone. Every such drop is logged with its reason.
* Throttled for longer than a function should wait: the message goes back on the queue with a
  visibility delay (a new copy, this delivery completes), so no instance sits idle in a sleep.
* A failure the upstream says is final (401/403/404): the job is marked failed (finished lines kept).
* A passing failure of a chunk (upstream or storage down, late, overloaded): recorded on the job row
  and retried with backoff until the job's time budget is spent (``shared.jobs.patience``).
* Anything else (a crash, or the queue itself unreachable): recorded on the job row and raised, so
  the host redelivers after ``visibilityTimeout`` and, after ``maxDequeueCount`` tries, poisons it.
"""

from __future__ import annotations

import json
import logging
import random
import re

from pydantic import ValidationError

from shared.batch.steps import run_batch_step
from shared.config import get_settings
from shared.jobs import enqueue, messages, patience, proof, strays
from shared.jobs.access import OWNER_FIELD
from shared.jobs.charge import CallerPaced
from shared.jobs.embed import JobFailed
from shared.jobs.finalize import close_incomplete
from shared.jobs.ids import is_engine_id
from shared.jobs.pacer import Throttled, get_pacer
from shared.jobs.planner import InvalidJob, message_token, plan
from shared.jobs.runtime import Runtime, get_runtime
from shared.jobs.store import FAILED, clip, now
from shared.jobs.worker import run_chunk

logger = logging.getLogger("gateway.jobs")

# A chunk handed back this often (each time for the wait the upstream asked) fails the normal way.
MAX_DEFERRALS = 100
_JOB_ID = re.compile(rb"(?:ejob|batch)_[0-9a-f]{32}")


def sniff_job_id(body: bytes) -> str | None:
    """The job id a message mentions, even when the message is otherwise broken (for logs: it proves nothing)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and is_engine_id(data.get("id")):
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


def claim(body: bytes) -> tuple[str | None, object, object]:
    """(job id, token, owner) as the message states them; the token of a tokenless job message is its digest."""
    try:
        message = messages.parse(body)
    except ValidationError:
        pass
    else:
        token = message_token(message) if isinstance(message, messages.JobMessage) else message.token
        owner = message.owner if isinstance(message, messages.JobMessage) else None
        return message.id, token, owner
    try:
        data = json.loads(body)
    except ValueError:
        return None, None, None
    if not isinstance(data, dict) or not is_engine_id(data.get("id")):
        return None, None, None
    return str(data["id"]), data.get(proof.TOKEN_FIELD), data.get(OWNER_FIELD)


async def provable_job(body: bytes) -> tuple[str | None, bool]:
    """(the job the message provably belongs to, whether that job has no row yet), else (None, False).

    A message proves its job by stating the job's id at top level of valid JSON and carrying its token;
    an id merely mentioned somewhere, or a wrong or missing token, proves nothing.
    """
    job_id, token, _ = claim(body)
    if job_id is None:
        return None, False
    row = await (await get_runtime()).store.get_row(job_id)
    return (job_id, row is None) if proof.proves(row, token) else (None, False)


async def handle_message(body: bytes, message_id: str, dequeue_count: int) -> None:
    await _sweep_strays()
    try:
        message = messages.parse(body)
    except ValidationError as exc:
        await reject(body, message_id, "invalid_message", describe(exc))
        return
    rt = await get_runtime()
    if isinstance(message, messages.ChunkMessage) and message.model not in get_settings().models.values():
        await reject(body, message_id, "model_not_allowed",
                     f"the chunk's model '{message.model}' is not allowed by this gateway (OPENAI_MODELS)")
        return
    try:
        if isinstance(message, messages.JobMessage):
            await plan(rt, message)
        elif isinstance(message, messages.BatchMessage):
            await run_batch_step(rt, message)
        else:
            await run_chunk(rt, message, get_pacer(message.model))
    except proof.Unproven as exc:
        await drop(body, message_id, str(exc))
    except InvalidJob as exc:
        await reject(body, message_id, "invalid_job", str(exc))
    except JobFailed as exc:
        await end_early(rt, message.id, exc.code, exc.message)
    except Throttled as exc:
        await defer(rt, message, exc.wait, counted=not (isinstance(exc, CallerPaced) or exc.progressed))
    except Exception as exc:
        await _note_error(rt, message.id, message_id, dequeue_count, exc)
        if not (isinstance(message, messages.ChunkMessage) and patience.is_passing(exc)):
            raise
        try:
            await retry_later(rt, message, exc)
        except Exception:  # the queue is down too: the host's redelivery is the only way left
            raise exc from None


async def _sweep_strays() -> None:
    """Now and then, keep what the host could not decode (``shared.jobs.strays``); never in the way of a job."""
    try:
        await strays.sweep(await get_runtime(), get_settings().jobs_queue)
    except Exception:
        logger.warning("could not sweep the stray queue", exc_info=True)


async def reject(body: bytes, message_id: str, code: str, reason: str) -> None:
    """Fail the job the message provably belongs to (if any) and move the message to the poison queue now."""
    rt = await get_runtime()
    job_id, new = await provable_job(body)
    logger.warning(json.dumps({"event": "message_rejected", "message_id": message_id, "job_id": job_id,
                               "mentions": sniff_job_id(body) if job_id is None else job_id,
                               "fails_job": job_id is not None, "reason": reason}))
    if job_id is not None:
        _, _, owner = claim(body)
        # A job first seen in a broken message is created failed, owned as the message says (if it says).
        extra = {OWNER_FIELD: owner} if new and isinstance(owner, str) and _owner_ok(owner) else {}
        await rt.store.fail(job_id, code, reason, **extra)
    await enqueue.put_raw_message(rt.poison_queue, body)


def _owner_ok(owner: str) -> bool:
    return re.fullmatch(messages.OWNER_PATTERN, owner) is not None


async def drop(body: bytes, message_id: str, reason: str) -> None:
    """Move a message that cannot prove its job to the poison queue, leaving that job alone."""
    rt = await get_runtime()
    logger.warning(json.dumps({"event": "message_dropped", "message_id": message_id,
                               "mentions": sniff_job_id(body), "fails_job": False, "reason": reason}))
    await enqueue.put_raw_message(rt.poison_queue, body)


async def end_early(rt: Runtime, job_id: str, code: str, reason: str) -> None:
    """Fail the job now, keeping the lines it finished as partial results (``finalize.close_incomplete``)."""
    if not await close_incomplete(rt, job_id, status=FAILED, code=code, message=reason):
        await rt.store.fail(job_id, code, reason)  # no job row yet, or already ended (then a no-op)


async def retry_later(rt: Runtime, message: messages.ChunkMessage, exc: Exception) -> None:
    """A passing failure: try the chunk again after a backoff, within the job's time budget."""
    attempts = message.attempts or 0
    deadline = message.deadline or patience.deadline_from_now(get_settings().jobs_time_budget_seconds)
    wait = patience.backoff(attempts)
    if patience.time_left(deadline) < wait:
        await end_early(rt, message.id, "time_budget_exhausted",
                        f"The job's time budget ran out while the upstream or storage kept failing "
                        f"({attempts + 1} tries of chunk {message.chunk}); last error: {type(exc).__name__}: {exc}")
        return
    logger.info(json.dumps({"event": "chunk_retry_scheduled", "job_id": message.id, "chunk": message.chunk,
                            "attempt": attempts + 1, "wait_s": round(wait, 1)}))
    again = message.model_copy(update={"attempts": attempts + 1, "deadline": deadline})
    await enqueue.put_message(rt.queue, messages.to_json(again), delay=wait)


async def defer(rt: Runtime, message: messages.AnyMessage, wait: float, *,
                counted: bool = True) -> None:
    """Hand the chunk back for ``wait`` seconds, within the job's time budget.

    Messages from before time budgets (no ``deadline``) keep the old bound: ``counted`` hand-backs
    (upstream throttling without progress) are limited to :data:`MAX_DEFERRALS`.
    """
    if not isinstance(message, messages.ChunkMessage):  # pragma: no cover - planning never calls upstream
        raise RuntimeError("only chunk messages are throttled")
    if message.deadline is not None and patience.time_left(message.deadline) < wait:
        await end_early(rt, message.id, "time_budget_exhausted",
                        f"The job's time budget ran out while the deployment was throttled "
                        f"(chunk {message.chunk} handed back {message.deferrals} times).")
        return
    if message.deadline is None and counted and message.deferrals >= MAX_DEFERRALS:
        raise RuntimeError(f"chunk {message.chunk} was throttled {message.deferrals} times; giving up")
    # A little jitter so that chunks handed back together (here and on other instances) do not all
    # return in the same instant; small, because every second of it is throughput lost.
    delay = wait + random.uniform(0.0, min(2.0, 0.05 * wait + 0.25))
    again = message.model_copy(update={"deferrals": message.deferrals + int(counted)})
    await enqueue.put_message(rt.queue, messages.to_json(again), delay=delay)


async def _note_error(rt: Runtime, job_id: str, message_id: str, dequeue_count: int, exc: Exception) -> None:
    """Keep the latest failure on the job row, so the poison trigger can say why."""
    reason = f"{type(exc).__name__}: {exc}"
    logger.warning(json.dumps({"event": "message_failed", "job_id": job_id, "message_id": message_id,
                               "dequeue_count": dequeue_count, "error": reason[:500]}))
    try:
        await rt.store.merge(job_id, {"last_error": clip(reason), "last_error_at": now()})
    except Exception:  # storage may be what failed; the error is logged above either way
        logger.debug("could not record the error on job %s", job_id, exc_info=True)
