"""The HTTP side of OpenAI's Batch API: create, retrieve, list and cancel (HTTP-agnostic, like ``shared.gateway``).

A batch is a job of the embedding-job engine (``kind="batch"`` on its row, same table, queue and
container): this module checks the request against the caller's uploaded file, writes the batch row
and queues its ``plan`` step; the engine does the rest. Ending a batch early (cancel, or a completion
window that ran out) is the engine's ``close`` step too: this module only moves the row and asks for it.

Everything another caller owns answers exactly like what does not exist (404 ``batch_not_found`` /
``file_not_found``), as for embedding jobs (``shared.jobs.access``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.batch import files
from shared.batch.view import batch_view
from shared.config import get_settings
from shared.context import Reply, RequestContext
from shared.errors import (
    batch_not_cancellable,
    batch_not_found,
    invalid_batch_endpoint,
    invalid_completion_window,
    invalid_file_purpose,
    model_not_allowed,
    model_not_embedding,
)
from shared.jobs import access, enqueue, listing, messages, proof, retention
from shared.jobs.embedding_models import is_embedding_model
from shared.jobs.ids import is_batch_id, new_batch_id
from shared.jobs.outage import storage_errors
from shared.jobs.runtime import Runtime, get_runtime
from shared.jobs.store import (
    BATCH_KIND,
    CANCELLED,
    CANCELLING,
    KIND_FIELD,
    METADATA_FIELD,
    QUEUED,
    RUNNING,
    TERMINAL,
    JobState,
    clip,
    int64,
    now,
)
from shared.query_params import QueryValue
from shared.validation import parse_body

# What a batch's lines may call (``shared.batch.lines`` accepts the same, normalised to this form).
ENDPOINTS = ("/v1/embeddings", "/v1/chat/completions", "/v1/responses")
# Azure's documentation spells them without the version ("/chat/completions"); taken as the same.
_UNVERSIONED = {endpoint.removeprefix("/v1"): endpoint for endpoint in ENDPOINTS}
# OpenAI's only completion window; BATCH_COMPLETION_WINDOW_SECONDS says how long it really is here.
COMPLETION_WINDOW = "24h"
# A close step is asked for at most this often per batch (a poller reading an expired batch every
# second must not flood the queue); a lost close message is asked for again after it.
CLOSE_REQUEST_INTERVAL_SECONDS = 60.0
CLOSE_REQUESTED_FIELD = "close_requested_at"
UPLOAD_PURPOSE = "batch"
_OPEN = frozenset({QUEUED, RUNNING})
_JSON = {"content-type": "application/json"}
logger = logging.getLogger("gateway.batch")


class OutputExpiresAfter(BaseModel):
    """When the batch's output and error files expire, counted from their own creation (OpenAI's rule)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    anchor: Literal["created_at"]
    seconds: Annotated[messages.Integer, Field(ge=3600, le=30 * 24 * 3600)]


class CreateBatchRequest(BaseModel):
    """``POST /v1/batches``, as OpenAI's ``BatchCreateParams``; unknown fields are refused like a job's.

    ``endpoint`` and ``completion_window`` are plain strings here so that a wrong one gets OpenAI's
    400 naming the allowed values, rather than a generic validation error.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    input_file_id: Annotated[str, Field(min_length=1, max_length=256)]
    endpoint: Annotated[str, Field(min_length=1, max_length=256)]
    completion_window: Annotated[str, Field(min_length=1, max_length=64)]
    metadata: Annotated[dict[messages.MetadataKey, messages.MetadataValue], Field(max_length=16)] | None = None
    output_expires_after: OutputExpiresAfter | None = None


def _reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, body=json.dumps(body, ensure_ascii=False).encode(), headers=dict(_JSON))


async def _input_file(rt: Runtime, caller: str, file_id: str) -> dict[str, Any]:
    """The caller's own, unexpired upload (``files.owned_file``: else its one 404) with purpose ``batch``."""
    row = await files.owned_file(rt, file_id, caller, param="input_file_id")
    if row.get("purpose") != UPLOAD_PURPOSE:
        raise invalid_file_purpose(row.get("purpose"), UPLOAD_PURPOSE, "input_file_id")
    return row


def _endpoint(asked: str, file_row: Mapping[str, Any]) -> str:
    """The batch's endpoint in OpenAI's spelling: one the gateway runs, and the url of the file's lines."""
    endpoint = _UNVERSIONED.get(asked, asked)
    if endpoint not in ENDPOINTS:
        raise invalid_batch_endpoint(f"Invalid endpoint {asked[:80]!r}: this gateway runs batches for "
                                     f"{', '.join(ENDPOINTS)}.")
    if file_row.get("endpoint") != endpoint:
        raise invalid_batch_endpoint(f"The input file's requests are for {file_row.get('endpoint')!r}, not "
                                     f"{endpoint!r}; a batch's endpoint must be its lines' url.")
    return endpoint


def _deployment(endpoint: str, model: object) -> str:
    """Where the batch runs: the file's model as the gateway resolves it now (the allowlist may have changed)."""
    settings = get_settings()
    name = model if isinstance(model, str) else ""
    deployment = settings.models.get(name)
    if deployment is None:
        raise model_not_allowed(name, "input_file_id")
    if endpoint == "/v1/embeddings" and not is_embedding_model(name, deployment, settings):
        raise model_not_embedding(name)
    return deployment


async def create(ctx: RequestContext, raw: bytes) -> Reply:
    """Check the request against the caller's file, record the batch and queue its planning (200, as OpenAI)."""
    request = parse_body(raw, CreateBatchRequest)
    if request.completion_window != COMPLETION_WINDOW:
        raise invalid_completion_window(request.completion_window)
    with storage_errors():
        rt = await get_runtime()
        file_row = await _input_file(rt, ctx.caller, request.input_file_id)
        endpoint = _endpoint(request.endpoint, file_row)
        deployment = _deployment(endpoint, file_row.get("model"))
        ctx.model = deployment
        batch_id, token, created_at = new_batch_id(), proof.new_token(), now()
        fields: dict[str, Any] = {
            KIND_FIELD: BATCH_KIND, "status": QUEUED, "owner": ctx.caller, "token": token, "source": "http",
            "endpoint": endpoint, "input_file_id": request.input_file_id, "model": file_row.get("model"),
            "deployment": deployment, "completion_window": request.completion_window, "created_at": created_at,
            "expires_at": round(created_at + get_settings().batch_completion_window_seconds, 3),
            "total": int64(int(getattr(file_row.get("lines"), "value", file_row.get("lines")) or 0)),
        }
        if request.metadata:
            fields[METADATA_FIELD] = json.dumps(request.metadata, ensure_ascii=False)
        if request.output_expires_after is not None:
            fields["output_expires_after"] = request.output_expires_after.seconds
        await rt.store.create(batch_id, fields)
        try:
            await _put(rt, batch_id, token, "plan")
        except Exception as exc:
            await _note_enqueue_failure(rt, batch_id, exc)
            raise
    return _reply(200, batch_view(batch_id, JobState({"PartitionKey": batch_id, **fields})))


async def _put(rt: Runtime, batch_id: str, token: str, action: Literal["plan", "close"]) -> None:
    message = messages.BatchMessage.model_validate(
        {"schema": messages.SCHEMA_VERSION, "type": "batch", "id": batch_id, "token": token, "action": action})
    await enqueue.put_message(rt.queue, messages.to_json(message))


async def _note_enqueue_failure(rt: Runtime, batch_id: str, exc: Exception) -> None:
    """Mark the batch failed if storage still lets us; the caller gets the original error (503) either way."""
    reason = clip(f"The batch could not be queued: {type(exc).__name__}")
    try:
        await rt.store.fail(batch_id, "enqueue_failed", reason, failed_at=now(),
                            errors=json.dumps([{"code": "enqueue_failed", "message": reason}]))
    except Exception:  # storage is likely what failed; the row then stays queued, never run
        logger.warning("could not mark batch %s failed after an enqueue error", batch_id, exc_info=True)


async def _owned(rt: Runtime, caller: str, batch_id: str) -> JobState:
    """The caller's batch with its chunk rows; anything else is the same 404."""
    if not is_batch_id(batch_id):
        raise batch_not_found(batch_id)
    state = await rt.store.load(batch_id)
    if (state is None or not access.owns(state.row, caller) or state.row.get(KIND_FIELD) != BATCH_KIND
            or retention.is_expired(state.row)):  # kept no longer: as if it never existed
        raise batch_not_found(batch_id)
    return state


def _due_for_close(state: JobState) -> bool:
    """Should this batch be closed (cancelling, or past its window) with no close asked for lately?"""
    row = state.row
    if state.status in TERMINAL:
        return False
    past_window = row.get("expires_at") is not None and now() > float(row["expires_at"])
    if state.status != CANCELLING and not past_window:
        return False
    last = row.get(CLOSE_REQUESTED_FIELD)
    return last is None or now() - float(last) >= CLOSE_REQUEST_INTERVAL_SECONDS


async def _ask_to_close(rt: Runtime, batch_id: str, state: JobState, fields: Mapping[str, Any] | None = None,
                        only_from: frozenset[str] = frozenset({QUEUED, RUNNING, CANCELLING})) -> None:
    """Apply ``fields`` and stamp the request (so readers wait a minute before asking again), then queue a close.

    Nothing happens when the row has left ``only_from`` meanwhile (it ended, or another cancel won).
    Two readers at the same instant may both ask; the engine's close is idempotent. If the message
    cannot be queued the stamp is cleared, so the next read asks again, and the caller gets the 503.
    """
    if not await rt.store.transition(batch_id, {**(fields or {}), CLOSE_REQUESTED_FIELD: now()},
                                     only_from=only_from):
        return
    try:
        await _put(rt, batch_id, str(state.row.get("token")), "close")
    except Exception:
        with contextlib.suppress(Exception):  # storage is likely down: the original error says so
            await rt.store.merge(batch_id, {CLOSE_REQUESTED_FIELD: 0.0})
        raise


async def retrieve(ctx: RequestContext, batch_id: str) -> Reply:
    """The caller's batch, live; reading one that ran past its window (or a stalled cancel) asks for its close."""
    with storage_errors():
        rt = await get_runtime()
        state = await _owned(rt, ctx.caller, batch_id)
        if _due_for_close(state):
            await _ask_to_close(rt, batch_id, state)
    return _reply(200, batch_view(batch_id, state))


async def cancel(ctx: RequestContext, batch_id: str) -> Reply:
    """Move a validating or running batch to ``cancelling`` and ask the engine to close it.

    The engine writes the output and error files from what finished and ends it ``cancelled``.
    Cancelling a batch that is cancelling or cancelled answers it again; one that has completed,
    failed or expired cannot be cancelled (409, as OpenAI answers).
    """
    with storage_errors():
        rt = await get_runtime()
        state = await _owned(rt, ctx.caller, batch_id)
        if state.status in _OPEN:
            await _ask_to_close(rt, batch_id, state, {"status": CANCELLING, "cancelling_at": now()}, _OPEN)
            state = await _owned(rt, ctx.caller, batch_id)
        elif _due_for_close(state):  # cancelling already, but its close seems lost: ask again
            await _ask_to_close(rt, batch_id, state)
    if state.status not in (CANCELLING, CANCELLED):
        raise batch_not_cancellable(batch_view(batch_id, state)["status"])
    return _reply(200, batch_view(batch_id, state))


async def list_batches(ctx: RequestContext, query: Mapping[str, QueryValue]) -> Reply:
    """The caller's batches, newest first, in pages (``limit``, ``after`` = the last id of a page),
    read from the caller's owner index (``shared.jobs.listing``); running ones with live counts."""
    with storage_errors():
        rt = await get_runtime()
        body = await listing.owned_list(rt, ctx.caller, query, kind=BATCH_KIND, noun="batches", view=batch_view)
    return _reply(200, body)


__all__ = ["cancel", "create", "list_batches", "retrieve"]
