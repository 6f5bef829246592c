"""The ``/v1/files`` operations (OpenAI's Files API for batch inputs and outputs), HTTP-agnostic.

An upload is a multipart form (``file``, ``purpose=batch``, optional ``expires_after`` in any of the
spellings clients send: ``shared.batch.file_expiry``). It is parsed as it arrives with python-multipart's
streaming parser (the one Starlette itself uses; declared in requirements.txt), never held whole: the
file's bytes go through the line check (``shared.batch.lines.FileCheck``) and are staged as blob blocks
at the same time, and the blob is committed only when the form and every line are valid. Memory stays
at one block whatever the file's size, and a bad file costs nothing in storage (uncommitted blocks are
dropped by the service).

A form that could be read two ways is refused like a JSON body with a duplicate key: a field twice,
two files, or a field the API does not define is 400 ``invalid_multipart``.

Files belong to their uploader (``shared.jobs.access.owns``); another caller's file, an expired one
and a missing one are the same 404 ``file_not_found``. Rows and blobs live with the jobs' (see
``shared.jobs.layout``: ``files/{id}.jsonl``, one ``file`` row per file); :func:`record_file` is the
one writer of file rows, used for a batch's output and error files too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.batch import file_expiry
from shared.batch.lines import MAX_REPORTED_ERRORS, FileCheck, FileErrors, FileSummary, LineError
from shared.config import get_settings
from shared.context import Reply, RequestContext
from shared.errors import (
    GatewayError,
    file_not_found,
    file_too_large,
    invalid_batch_file,
    invalid_file_purpose,
    invalid_multipart,
    invalid_query_parameter,
    missing_parameter,
)
from shared.jobs import access, blobs, layout, retention
from shared.jobs.ids import is_file_id, new_file_id
from shared.jobs.outage import storage_errors
from shared.jobs.runtime import Runtime, get_runtime
from shared.jobs.store import int64
from shared.query_params import QueryValue
from shared.routes import StreamedBody

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient

UPLOAD_PURPOSE, OUTPUT_PURPOSE = "batch", "batch_output"
# The form fields an upload may carry besides ``file`` (each at most once), and how long one may be.
FIELDS = ("purpose", *file_expiry.FIELDS)
MAX_FIELD_BYTES = 1024
MAX_FILENAME_CHARS = 255
# Blob blocks are staged at this size: few round trips, bounded memory.
BLOCK_BYTES = 4 * 1024 * 1024
# OpenAI's list default and ceiling.
DEFAULT_LIST_LIMIT = 10_000
CONTENT_TYPE = "application/octet-stream"
_JSON = {"content-type": "application/json"}


def _now() -> float:
    return round(time.time(), 3)


def _reply(body: dict[str, Any]) -> Reply:
    return Reply(200, body=json.dumps(body, ensure_ascii=False).encode(), headers=_JSON)


# Rows: the one writer, and the view callers get.

async def record_file(rt: Runtime, file_id: str, *, owner: str, purpose: str, filename: str, size: int, lines: int,
                      blob: str, created_at: float | None = None, expires_at: float | None = None,
                      endpoint: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Write (or rewrite: idempotent, for a finalize that runs twice) the row of a file whose blob exists.

    ``blob`` names the content in the jobs container; ``endpoint`` and ``model`` are what line
    validation found (uploads only), so creating a batch from the file needs no second read.
    """
    from azure.data.tables import UpdateMode

    row: dict[str, Any] = {"PartitionKey": file_id, "RowKey": layout.FILE_ROW, access.OWNER_FIELD: owner,
                           "purpose": purpose, "filename": filename[:MAX_FILENAME_CHARS], "bytes": int64(size),
                           "lines": int64(lines), "blob": blob,
                           "created_at": _now() if created_at is None else created_at}
    optional = {"expires_at": expires_at, "endpoint": endpoint, "model": model}
    row |= {key: value for key, value in optional.items() if value is not None}
    await rt.store.table.upsert_entity(row, mode=UpdateMode.REPLACE)
    return row


def _int(value: Any) -> int:
    return int(getattr(value, "value", value))


def file_view(file_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The file as OpenAI's ``FileObject`` and Azure's ``AzureOpenAIFile`` (``expires_at``: its own, else
    when retention ends it).

    The optional fields are left out rather than sent as ``null`` when there is nothing to say:
    Azure's description types ``expires_at`` and ``status_details`` as a plain integer and string
    (not nullable), and OpenAI's SDKs read a missing field as ``None``. ``status_details`` is
    deprecated (fine-tuning only) and a file here is never in error, so it is never sent; ``status``
    is ``processed`` because an upload is checked whole before it is stored.
    """
    view: dict[str, Any] = {"id": file_id, "object": "file", "bytes": _int(row.get("bytes", 0)),
                            "created_at": int(float(row.get("created_at") or 0))}
    expires = retention.file_expires_at(row)
    if expires is not None:
        view["expires_at"] = int(float(expires))
    return view | {"filename": row.get("filename") or "", "purpose": row.get("purpose"), "status": "processed"}


def _expired(row: Mapping[str, Any], now: float) -> bool:
    """Past its ``expires_at`` or its retention: answered as if it never existed (the sweep deletes it)."""
    return retention.is_expired(row, now)


async def owned_file(rt: Runtime, file_id: str, caller: str, *, param: str = "file_id") -> dict[str, Any]:
    """The row of the caller's live file, else the one 404 for "missing", "expired" and "not yours"."""
    from azure.core.exceptions import ResourceNotFoundError

    if not is_file_id(file_id):
        raise file_not_found(file_id, param=param)
    try:
        row: dict[str, Any] = await rt.store.table.get_entity(file_id, layout.FILE_ROW)
    except ResourceNotFoundError:
        raise file_not_found(file_id, param=param) from None
    if not access.owns(row, caller) or _expired(row, time.time()):
        raise file_not_found(file_id, param=param)
    return row


# Upload.

@dataclass(slots=True)
class _Form:
    """What python-multipart's callbacks have seen so far (they are synchronous; ``upload`` does the I/O)."""

    check: FileCheck
    max_file_bytes: int
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    pending: bytearray = field(default_factory=bytearray)  # file bytes not staged yet
    ended: bool = False
    _header_name: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _disposition: bytes = b""
    _part: str | None = None  # the current part's name
    _value: bytearray = field(default_factory=bytearray)
    _in_file: bool = False

    def callbacks(self) -> Any:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value_data, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end, "on_end": self._end}

    def _part_begin(self) -> None:
        self._disposition, self._part, self._in_file = b"", None, False
        self._value.clear()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            if self._disposition:
                raise invalid_multipart("a part has two Content-Disposition headers.")
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        kind, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if kind != b"form-data" or raw_name is None:
            raise invalid_multipart("every part needs 'Content-Disposition: form-data; name=...'.")
        name = raw_name.decode("latin-1")
        if name != "file" and name not in FIELDS:
            raise invalid_multipart(f"unknown field {name[:40]!r}; an upload takes file, purpose and "
                                    "expires_after ([anchor]/[seconds], .anchor/.seconds, or one JSON part).",
                                    param=name[:40])
        if name in self.fields or (name == "file" and self.filename is not None):
            raise invalid_multipart(f"the field {name!r} is sent twice; send it once (readers disagree on which "
                                    "copy counts).", param=name)
        self._part = name
        if name == "file":
            self._in_file = True
            raw_filename = options.get(b"filename", b"")
            self.filename = raw_filename.decode("utf-8", "replace")[:MAX_FILENAME_CHARS] or "batch.jsonl"
            _check_purpose(self.fields, final=False)  # a wrong purpose sent first fails before the upload

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._in_file:
            self.size += len(piece)
            if self.size > self.max_file_bytes:
                raise file_too_large(self.max_file_bytes)
            self.check.feed(piece)
            if not self.check.failed:  # a file already known to be bad is only read on, never stored
                self.pending += piece
        else:
            self._value += piece
            if len(self._value) > MAX_FIELD_BYTES:
                raise invalid_multipart(f"the field {self._part!r} is longer than {MAX_FIELD_BYTES} bytes.",
                                        param=self._part)

    def _part_end(self) -> None:
        if self._part is not None and not self._in_file:
            try:
                self.fields[self._part] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid_multipart(f"the field {self._part!r} is not UTF-8.", param=self._part) from None
        self._part = None

    def _end(self) -> None:
        self.ended = True


def _boundary(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        shown = content_type[:80] or "none"
        raise invalid_multipart(f"the Content-Type is {shown!r}; upload files as multipart/form-data (with a "
                                "boundary), as the OpenAI SDKs do.")
    return boundary


def _check_purpose(fields: Mapping[str, str], *, final: bool) -> None:
    purpose = fields.get("purpose")
    if purpose is None:
        if final:
            raise missing_parameter("purpose")
        return
    if purpose != UPLOAD_PURPOSE:
        raise invalid_file_purpose(purpose[:40], UPLOAD_PURPOSE, "purpose")


class _Blocks:
    """The blob's blocks as the file streams in: staged once full, committed only for a valid file."""

    def __init__(self, blob: BlobClient) -> None:
        self.blob, self.ids = blob, list[str]()

    async def stage(self, form: _Form, *, final: bool = False) -> None:
        while len(form.pending) >= BLOCK_BYTES or (final and form.pending):
            data = bytes(form.pending[:BLOCK_BYTES])
            del form.pending[:BLOCK_BYTES]
            block = f"b{len(self.ids):08d}"  # same length for every block, as the service requires
            await blobs.stage_block(self.blob, block, data)
            self.ids.append(block)

    async def commit(self) -> None:
        from azure.storage.blob import BlobBlock, ContentSettings

        await self.blob.commit_block_list([BlobBlock(block_id=b) for b in self.ids],
                                          content_settings=ContentSettings(content_type=blobs.NDJSON))


async def _read_form(body: StreamedBody, form: _Form, blocks: _Blocks) -> None:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser

    boundary = _boundary(body.content_type)
    try:
        parser = MultipartParser(boundary, form.callbacks())
        async for chunk in body.chunks:
            parser.write(chunk)
            if len(form.check.errors) >= MAX_REPORTED_ERRORS:  # enough to report: stop reading
                raise _bad_file(form.check.errors)
            if not form.check.failed:
                await blocks.stage(form)
        parser.finalize()
    except FormParserError as exc:
        raise invalid_multipart(f"the form cannot be parsed ({exc}).") from None
    if not form.ended:
        raise invalid_multipart("the form ended before its closing boundary.")


async def upload(ctx: RequestContext, body: StreamedBody) -> Reply:
    """``POST /v1/files``: check and store a batch input file; answers the ``FileObject``."""
    settings = get_settings()
    form = _Form(FileCheck(settings), settings.files_max_bytes)
    file_id = new_file_id()
    name = layout.file_blob(file_id)
    with storage_errors():
        rt = await get_runtime()
        blocks = _Blocks(blobs.blob_client(rt.storage, rt.container, name))
        await _read_form(body, form, blocks)
        if form.filename is None:
            raise missing_parameter("file")
        _check_purpose(form.fields, final=True)
        seconds = file_expiry.expiry_seconds(form.fields)
        summary = _summary(form.check)
        await blocks.stage(form, final=True)
        await blocks.commit()
        created = _now()
        row = await record_file(rt, file_id, owner=ctx.caller, purpose=UPLOAD_PURPOSE, filename=form.filename,
                                size=form.size, lines=summary.lines, blob=name, created_at=created,
                                expires_at=None if seconds is None else created + seconds,
                                endpoint=summary.endpoint, model=summary.model)
    return _reply(file_view(file_id, row))


def _summary(check: FileCheck) -> FileSummary:
    try:
        return check.finish()
    except FileErrors as exc:
        raise _bad_file(exc.errors) from None


def _bad_file(errors: list[LineError]) -> GatewayError:
    return invalid_batch_file([error.to_dict() for error in errors])


# Reading and deleting.

async def list_files(ctx: RequestContext, query: Mapping[str, QueryValue]) -> Reply:
    """The caller's live files, newest first unless ``order=asc``; ``after`` is the last id of a page.

    Query parameters are OpenAI's (``purpose``, ``limit`` 1-10000, ``order``, ``after``); Azure's
    description lists only ``purpose``. An empty page answers ``first_id``/``last_id`` ``null``, as
    OpenAI does, where Azure's description declares required strings: there is no id to give, and
    the SDKs' cursor pages read the ids from ``data``, never from these fields.
    """
    limit, after = query.get("limit", DEFAULT_LIST_LIMIT), query.get("after")
    purpose, order = query.get("purpose"), query.get("order", "desc")
    assert isinstance(limit, int) and (after is None or isinstance(after, str))
    filter_, parameters = "RowKey eq @row and owner eq @owner", {"row": layout.FILE_ROW, "owner": ctx.caller}
    if isinstance(purpose, str):
        filter_, parameters = filter_ + " and purpose eq @purpose", {**parameters, "purpose": purpose}
    now = time.time()
    with storage_errors():
        rt = await get_runtime()
        rows = [row async for row in rt.store.table.query_entities(filter_, parameters=parameters)
                if not _expired(row, now)]
    rows.sort(key=lambda row: (float(row.get("created_at") or 0), row["PartitionKey"]), reverse=order != "asc")
    ids = [str(row["PartitionKey"]) for row in rows]
    start = 0
    if after is not None:
        if after not in ids:  # unknown, expired or another caller's: one answer, revealing nothing
            raise invalid_query_parameter("after", "not the id of one of your files")
        start = ids.index(after) + 1
    data = [file_view(str(row["PartitionKey"]), row) for row in rows[start:start + limit]]
    return _reply({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                   "last_id": data[-1]["id"] if data else None, "has_more": start + limit < len(rows)})


async def retrieve(ctx: RequestContext, file_id: str) -> Reply:
    with storage_errors():
        row = await owned_file(await get_runtime(), file_id, ctx.caller)
    return _reply(file_view(file_id, row))


async def delete(ctx: RequestContext, file_id: str) -> Reply:
    """Delete the content, then the row (a retry after a failure in between finishes the job)."""
    from azure.core.exceptions import ResourceNotFoundError

    with storage_errors():
        rt = await get_runtime()
        row = await owned_file(rt, file_id, ctx.caller)
        with contextlib.suppress(ResourceNotFoundError):
            await blobs.blob_client(rt.storage, rt.container, str(row["blob"])).delete_blob()
        with contextlib.suppress(ResourceNotFoundError):
            await rt.store.table.delete_entity(file_id, layout.FILE_ROW)
    return _reply({"id": file_id, "object": "file", "deleted": True})


async def content(ctx: RequestContext, file_id: str) -> Reply:
    """The file's bytes as stored, streamed through as they download (memory stays flat)."""
    with storage_errors():
        rt = await get_runtime()
        row = await owned_file(rt, file_id, ctx.caller)
        events = await _open(blobs.blob_client(rt.storage, rt.container, str(row["blob"])), file_id)
    return Reply(200, headers={"content-type": CONTENT_TYPE}, events=events)


async def _open(blob: BlobClient, file_id: str) -> AsyncIterator[bytes]:
    """Start the download now (a missing blob is a 404, not a broken stream) and stream the rest."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        downloader = await blob.download_blob(max_concurrency=1)
    except ResourceNotFoundError:
        raise file_not_found(file_id) from None

    async def stream() -> AsyncIterator[bytes]:
        async for piece in downloader.chunks():
            yield piece

    return stream()


__all__ = ["OUTPUT_PURPOSE", "UPLOAD_PURPOSE", "content", "delete", "file_view", "list_files", "owned_file",
           "record_file", "retrieve", "upload"]
