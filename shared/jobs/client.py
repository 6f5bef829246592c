"""Submit an embedding job straight onto the queue from any Python back end.

    from shared.jobs.client import submit_job, submit_job_sync

    job_id = await submit_job(["first text", {"id": "doc-7", "text": "second"}], model="text-embedding-3-small")
    job_id = submit_job_sync(texts, model="embeddings", connection_string=os.environ["AzureWebJobsStorage"])
    job_id = await submit_job(model="embeddings", input_blob="inputs/corpus.jsonl")    # a JSONL blob you wrote
    job_id = await submit_job(texts, model="embeddings", owner=caller_for_key(team_key))  # readable by that key

The message follows ``schemas/embedding-job-message.v1.json`` and is base64-encoded like
``TextBase64EncodePolicy`` (the Functions host's ``messageEncoding: base64``). Inline inputs that
would make the message larger than a queue allows (64 KiB encoded) are written to
``jobs/{id}/input.jsonl`` in the jobs container first and the message carries a reference (claim
check). An input blob must sit under ``inputs/`` in the jobs container (``shared.jobs.refs``). Only
storage is needed: no upstream settings, no gateway HTTP call. Progress and results: the job row and
the results blob directly, or ``GET /api/v1/embeddings/jobs/{id}`` and ``.../results`` for the
caller named as ``owner`` (a job without one is readable by no HTTP caller; ``shared.jobs.access``).
Each message carries a fresh token recorded on the job row, which proves later messages belong to
the job (``shared.jobs.proof``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from shared.callers import identify
from shared.jobs import blobs, enqueue, layout, messages, proof
from shared.jobs.ids import new_job_id
from shared.storage import DEFAULT_CONNECTION, StorageClients, StorageConfig

DEFAULT_QUEUE = "embedding-jobs"
DEFAULT_CONTAINER = "embedding-jobs"
DEFAULT_TABLE = "embeddingjobs"
logger = logging.getLogger("gateway.jobs.client")


class JobIdTaken(ValueError):
    """``submit_job(job_id=...)`` named the id of a job that already exists."""


def _queue_name() -> str:
    return os.environ.get("EMBEDDING_JOBS_QUEUE", "").strip() or DEFAULT_QUEUE


def _container_name() -> str:
    return os.environ.get("EMBEDDING_JOBS_CONTAINER", "").strip() or DEFAULT_CONTAINER


def _table_name() -> str:
    return os.environ.get("EMBEDDING_JOBS_TABLE", "").strip() or DEFAULT_TABLE


def caller_for_key(function_key: str) -> str:
    """The caller identity the gateway derives from a function key (``key:<digest>``), for ``owner``."""
    return identify({"x-functions-key": function_key})


def build_message(*, job_id: str, model: str, inputs: Iterable[str | Mapping[str, str]] | None = None,
                  input_blob: str | messages.BlobRef | None = None, dimensions: int | None = None,
                  metadata: Mapping[str, str] | None = None, owner: str | None = None,
                  token: str | None = None) -> messages.JobMessage:
    """A validated v1 job message (raises ``pydantic.ValidationError`` on bad arguments)."""
    data: dict[str, Any] = {"schema": messages.SCHEMA_VERSION, "type": "job", "id": job_id, "model": model}
    if owner is not None:
        data["owner"] = owner
    if token is not None:
        data["token"] = token
    if inputs is not None:
        data["input"] = [v if isinstance(v, str) else dict(v) for v in inputs]
    if input_blob is not None:
        data["input_blob"] = {"name": input_blob} if isinstance(input_blob, str) else input_blob.model_dump(
            exclude_none=True)
    if dimensions is not None:
        data["dimensions"] = dimensions
    if metadata:
        data["metadata"] = dict(metadata)
    return messages.JobMessage.model_validate(data)


async def _send_creating(create: Any, send: Any) -> None:
    """Send; when the queue or container does not exist yet (no host has started), create it once."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    try:
        await send()
    except ResourceNotFoundError:
        with contextlib.suppress(ResourceExistsError):
            await create()
        await send()


async def submit_job(inputs: Iterable[str | Mapping[str, str]] | None = None, *, model: str,
                     input_blob: str | messages.BlobRef | None = None, dimensions: int | None = None,
                     metadata: Mapping[str, str] | None = None, job_id: str | None = None,
                     owner: str | None = None, storage: StorageClients | None = None, queue: str | None = None,
                     container: str | None = None, table: str | None = None) -> str:
    """Queue an embedding job; returns its id.

    ``owner`` (a caller identity, see :func:`caller_for_key`) may read the job over HTTP and pays for
    its tokens. ``storage`` defaults to ``AzureWebJobsStorage`` from the environment (built and
    closed here); pass your own long-lived :class:`StorageClients` when submitting many jobs.
    """
    job_id = job_id or new_job_id()
    message = build_message(job_id=job_id, model=model, inputs=inputs, input_blob=input_blob,
                            dimensions=dimensions, metadata=metadata, owner=owner, token=proof.new_token())
    owned = storage is None
    clients = storage or StorageClients(StorageConfig.from_env())
    try:
        await _submit(clients, message, queue or _queue_name(), container or _container_name(),
                      table or _table_name())
    finally:
        if owned:
            await clients.close()
    return job_id


async def _submit(clients: StorageClients, message: messages.JobMessage, queue_name: str, container: str,
                  table: str) -> None:
    body = messages.to_json(message)
    if not messages.fits_queue(body):
        name = layout.input_blob(message.id)
        blob = blobs.blob_client(clients, container, name)
        lines = [json.dumps(v if isinstance(v, str) else v.model_dump(), ensure_ascii=False)
                 for v in message.input or ()]
        await _send_creating(lambda: clients.blob.create_container(container),
                             lambda: blobs.upload_lines(blob, lines))
        message = message.model_copy(update={"input": None,
                                             "input_blob": messages.BlobRef(container=container, name=name)})
        body = messages.to_json(message)
    await _record_queued(clients, message, table)
    queue_client = clients.queue.get_queue_client(queue_name)
    await _send_creating(queue_client.create_queue, lambda: enqueue.put_message(queue_client, body))


async def _record_queued(clients: StorageClients, message: messages.JobMessage, table: str) -> None:
    """Write the job row now, so that status reads say ``queued`` instead of 404 until a worker plans it.

    Best effort: a producer allowed to send messages but not to write the table still submits; the
    planner creates the row then.
    """
    from shared.jobs.store import JobStore, fields_for

    store = JobStore(clients.table.get_table_client(table))
    created: list[bool] = []

    async def create() -> None:
        created.append(await store.create(message.id, fields_for(message, None, "queue", token=message.token or "")))

    try:
        await _send_creating(lambda: clients.table.create_table_if_not_exists(table), create)
    except Exception as exc:
        logger.warning("could not record job %s as queued (%s); it appears once planned", message.id,
                       type(exc).__name__)
        return
    if created and not created[-1]:
        # Another job has this id: its message would be refused by the worker (it cannot prove the
        # job, shared.jobs.proof); say so to the producer now instead.
        raise JobIdTaken(f"an embedding job with id {message.id} already exists; choose another id")


def submit_job_sync(inputs: Iterable[str | Mapping[str, str]] | None = None, *, model: str,
                    connection_string: str | None = None, **options: Any) -> str:
    """Blocking variant of :func:`submit_job` for code without an event loop."""
    config = StorageConfig.from_connection_string(connection_string) if connection_string \
        else StorageConfig.from_env(connection=DEFAULT_CONNECTION)

    async def run() -> str:
        clients = StorageClients(config)
        try:
            return await submit_job(inputs, model=model, storage=clients, **options)
        finally:
            await clients.close()

    return asyncio.run(run())
