"""The HTTP side of embedding jobs: submit, status, results (HTTP-agnostic, like ``shared.gateway``)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from pydantic import Field

from shared.config import get_settings
from shared.context import Reply, RequestContext
from shared.errors import GatewayError, job_not_cancellable, job_not_succeeded, not_found
from shared.jobs import access, blobs, enqueue, layout, listing, messages, proof, retention
from shared.jobs import results as result_lines
from shared.jobs.embedding_models import job_deployment
from shared.jobs.finalize import close_incomplete
from shared.jobs.ids import is_job_id, new_job_id
from shared.jobs.outage import storage_errors
from shared.jobs.runtime import Runtime, get_runtime
from shared.jobs.store import (
    CANCELLED,
    FAILED,
    PARTIAL_RESULTS_FIELD,
    SUCCEEDED,
    TERMINAL,
    JobState,
    clip,
    fields_for,
)
from shared.query_params import QueryValue
from shared.validation import parse_body

ROUTE = "/api/v1/embeddings/jobs"
_JSON = {"content-type": "application/json"}
logger = logging.getLogger("gateway.jobs")


class SubmitRequest(messages.StrictModel):
    """``POST /api/v1/embeddings/jobs``: the job message's caller-facing fields (``schema.SUBMIT_REQUEST``)."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: Annotated[list[messages.InputValue], Field(min_length=1)]
    dimensions: Annotated[messages.Integer, Field(ge=1, le=messages.MAX_DIMENSIONS)] | None = None
    metadata: Annotated[dict[messages.MetadataKey, messages.MetadataValue], Field(max_length=16)] | None = None


def _seconds(value: Any) -> int | None:
    return None if value is None else int(float(value))


def job_view(job_id: str, state: JobState, container: str) -> dict[str, Any]:
    """The job as callers see it (OpenAI-style object with unix-second timestamps)."""
    row = state.row
    embedded, failed, tokens = state.totals()
    total = row.get("total")
    view: dict[str, Any] = {
        "id": job_id,
        "object": "embedding.job",
        "status": state.status,
        "model": row.get("model"),
        "counts": {"total": None if total is None else int(total), "embedded": embedded, "failed": failed},
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "created_at": _seconds(row.get("created_at")),
        "started_at": _seconds(row.get("started_at")),
        "completed_at": _seconds(row.get("completed_at")),
        # When the job and its results stop being kept (DATA_RETENTION_DAYS after it ended); null while it runs.
        "expires_at": _seconds(retention.expires_at(row)),
        "error": None,
    }
    if row.get("dimensions") is not None:
        view["dimensions"] = int(row["dimensions"])
    metadata = state.metadata()
    if metadata is not None:
        view["metadata"] = metadata
    if state.status in (FAILED, CANCELLED):
        view["error"] = {"code": row.get("error_code"), "message": row.get("error")}
        if row.get("poison_blob"):
            view["error"]["poison_blob"] = {"container": container, "name": row["poison_blob"]}
    if has_results(state):
        view["results"] = {"url": f"{ROUTE}/{job_id}/results", "container": container,
                           "prefix": layout.results_prefix(job_id), "content_type": blobs.NDJSON}
    return view


def has_results(state: JobState) -> bool:
    """Results can be read: while it runs (the chunks finished so far), and once it ended with them.

    A job that ended early has them once its close wrote its blobs (``finalize.close_incomplete``);
    one that ended before planning read no inputs and never has any.
    """
    return state.status not in TERMINAL or results_complete(state)


def results_complete(state: JobState) -> bool:
    """Every input has its line: succeeded, or ended early with the close's blobs written."""
    return state.status == SUCCEEDED or (state.status in (FAILED, CANCELLED)
                                         and bool(state.row.get(PARTIAL_RESULTS_FIELD)))


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, body=json.dumps(body, ensure_ascii=False).encode(), headers={**_JSON, **(headers or {})})


async def submit(ctx: RequestContext, raw: bytes) -> Reply:
    """Record the job (owned by the caller, with its proof token) and queue it; tokens are charged as it runs."""
    settings = get_settings()
    request = parse_body(raw, SubmitRequest)
    deployment = job_deployment(request.model, settings)
    ctx.model = deployment
    job_id = new_job_id()
    token = proof.new_token()
    message = messages.JobMessage.model_validate({
        "schema": messages.SCHEMA_VERSION, "type": "job", "id": job_id, "model": request.model,
        "input": request.input,
        **({"dimensions": request.dimensions} if request.dimensions is not None else {}),
        **({"metadata": request.metadata} if request.metadata else {}),
        "token": token, "owner": ctx.caller,
    }, strict=False)
    fields = {**fields_for(message, deployment, "http", token=token), "total": len(request.input)}
    with storage_errors():
        rt = await get_runtime()
        await rt.store.create(job_id, fields)
        try:
            await enqueue.put_message(rt.queue, await _queue_form(rt, message))
        except Exception as exc:
            await _note_enqueue_failure(rt, job_id, exc)
            raise
    state = JobState({"PartitionKey": job_id, **fields})
    return _reply(202, job_view(job_id, state, rt.container), {"location": f"{ROUTE}/{job_id}"})


async def _note_enqueue_failure(rt: Runtime, job_id: str, exc: Exception) -> None:
    """Mark the job failed if storage still lets us; the caller gets the original error either way."""
    try:
        await rt.store.fail(job_id, "enqueue_failed", clip(f"The job could not be queued: {type(exc).__name__}"))
    except Exception:  # storage is likely what failed; the job row then stays queued, never run
        logger.warning("could not mark job %s failed after an enqueue error", job_id, exc_info=True)


async def _queue_form(rt: Runtime, message: messages.JobMessage) -> str:
    """The message JSON, with the inputs moved to a blob when they would not fit a queue message."""
    body = messages.to_json(message)
    if messages.fits_queue(body):
        return body
    name = layout.input_blob(message.id)
    await blobs.upload_lines(blobs.blob_client(rt.storage, rt.container, name),
                             (json.dumps(v if isinstance(v, str) else v.model_dump(), ensure_ascii=False)
                              for v in message.input or ()))
    by_reference = message.model_copy(update={"input": None, "input_blob": messages.BlobRef(name=name)})
    return messages.to_json(by_reference)


async def list_jobs(ctx: RequestContext, query: Mapping[str, QueryValue]) -> Reply:
    """The caller's own jobs, newest first, in pages (``limit``, ``after`` = the last id of a page).

    Shaped like OpenAI's lists (``data``, ``first_id``, ``last_id``, ``has_more``), read from the
    caller's owner index (``shared.jobs.listing``). Running jobs are read with their chunk rows so
    their counts are live, as in ``status``.
    """
    with storage_errors():
        rt = await get_runtime()
        body = await listing.owned_list(rt, ctx.caller, query, kind=listing.JOB_KIND, noun="embedding jobs",
                                        view=lambda job_id, state: job_view(job_id, state, rt.container))
    return _reply(200, body)


def _readable(row: Mapping[str, Any], caller: str) -> bool:
    """The caller's own job, still kept (an expired job answers as if it never existed)."""
    return access.owns(row, caller) and not retention.is_expired(row)


def _no_such_job(job_id: str) -> GatewayError:
    """One answer for "no such job", "not yours" and "expired", so an id reveals nothing."""
    return not_found(f"No embedding job with id {job_id[:80]!r}.", param="id", code="job_not_found")


def _job_id(value: str) -> str:
    if not is_job_id(value):
        raise _no_such_job(value)
    return value


async def status(ctx: RequestContext, job_id: str) -> Reply:
    with storage_errors():
        rt = await get_runtime()
        state = await rt.store.load(_job_id(job_id))
    if state is None or not _readable(state.row, ctx.caller):
        raise _no_such_job(job_id)
    return _reply(200, job_view(job_id, state, rt.container))


async def cancel(ctx: RequestContext, job_id: str) -> Reply:
    """Stop the job: no new chunk starts, the lines already finished stay readable as its results.

    Cancelling a cancelled job answers its view again; a job that already succeeded or failed
    cannot be cancelled (409 ``job_not_cancellable``).
    """
    with storage_errors():
        rt = await get_runtime()
        row = await rt.store.get_row(_job_id(job_id))
        if row is None or not _readable(row, ctx.caller):
            raise _no_such_job(job_id)
        if JobState(row).status not in TERMINAL:
            await close_incomplete(rt, job_id, status=CANCELLED, code="cancelled",
                                   message="The job was cancelled; finished lines are kept.")
        state = await rt.store.load(job_id)
    if state is None:  # pragma: no cover - the row was just read
        raise _no_such_job(job_id)
    if state.status != CANCELLED:
        raise job_not_cancellable(state.status)
    return _reply(200, job_view(job_id, state, rt.container))


async def results(ctx: RequestContext, job_id: str, query: Mapping[str, QueryValue]) -> Reply:
    """The results blobs in input order, streamed through as they download (memory stays flat).

    Readable while the job runs: the lines of the chunks finished so far, each blob listed only once
    whole, so a chunk is all there or not at all (``x-job-results: partial``); ``complete`` once
    every input has its line. ``encoding_format=base64`` re-encodes each vector on the way out
    (``results.base64_lines``); the blobs keep the floats, so one stored form serves both.
    """
    with storage_errors():
        rt = await get_runtime()
        row = await rt.store.get_row(_job_id(job_id))
        if row is None or not _readable(row, ctx.caller):
            raise _no_such_job(job_id)
        state = JobState(row)
        if not has_results(state):
            raise job_not_succeeded(state.status, f": {row.get('error')}")
        # "jobs/{id}/results" lists the chunks' blobs and a job's legacy single blob alike.
        found = rt.storage.blob.get_container_client(rt.container).list_blobs(
            name_starts_with=layout.legacy_results_blob(job_id).removesuffix(".jsonl"))
        names = result_lines.readable_blobs([blob.name async for blob in found], job_id)
    events = _stream(rt, names)
    if query.get("encoding_format") == "base64":
        events = result_lines.base64_lines(events)
    headers = {"content-type": blobs.NDJSON, "x-job-status": state.status,
               "x-job-results": "complete" if results_complete(state) else "partial"}
    return Reply(200, headers=headers, events=events)


async def _stream(rt: Runtime, names: list[str]) -> AsyncIterator[bytes]:
    """The blobs one after another, a download piece at a time."""
    for name in names:
        async for piece in blobs.iter_chunks(blobs.blob_client(rt.storage, rt.container, name)):
            yield piece


__all__ = ["cancel", "list_jobs", "results", "status", "submit"]
