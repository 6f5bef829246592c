"""Every HTTP route the app serves, written once.

Three readers share this table, so a route is added or changed here and nowhere else:

- ``blueprints/functions.py`` registers one Azure Functions function per row (route, methods,
  auth level, function name);
- ``shared.http.serve`` answers an API route with the operation for the request's method;
- ``shared.openapi`` builds ``/api/openapi.json`` from the rows (summary, body schema, answers).

Handlers are named ``"module:function"`` and imported on their first call, so indexing the app
(its cold start) loads none of the gateway, and the job pipeline loads only when a job route is hit.
``tests/unit/test_routes.py`` resolves every name and checks its signature against ``takes``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from shared.query_params import QueryParam

# What an API operation is called with, after shared.http.serve has made the RequestContext:
# "body": ``async (ctx, body: bytes) -> Reply`` (read under MAX_REQUEST_BYTES);
# "id": ``async (ctx, the route's one path parameter: str) -> Reply``;
# "id_query": ``async (ctx, the path parameter: str, query: dict[str, QueryValue]) -> Reply``, the query
#   validated against the operation's ``query`` (shared.query_params: unknown names and bad values are 400);
# "query": ``async (ctx, query: dict[str, QueryValue]) -> Reply``, the query validated as for "id_query";
# "nothing": ``() -> Reply``, answered from configuration alone (no upstream, no await);
# "upload": ``async (ctx, body: StreamedBody) -> Reply``, the body as it arrives (never held whole), cut
#   off past the operation's ``body_limit``: for uploads larger than MAX_REQUEST_BYTES (multipart files).
Takes = Literal["body", "id", "id_query", "query", "nothing", "upload"]
# Which setting bounds an operation's body: MAX_REQUEST_BYTES, or FILES_MAX_BYTES (plus room for the
# form's other fields) for file uploads.
BodyLimit = Literal["request", "file"]


@dataclass(frozen=True, slots=True)
class StreamedBody:
    """An "upload" operation's request body: its content type (a multipart form names its boundary
    there) and its bytes as they arrive, already bounded by the operation's body limit."""

    content_type: str
    chunks: AsyncIterator[bytes]

# The upstream can answer any of these on a relayed call; the gateway itself adds 400/404/413/422/429.
RELAYED_ERRORS = ("400", "403", "404", "413", "422", "429", "502", "504")


@dataclass(frozen=True, slots=True)
class Operation:
    """One method of an API route: who handles it, and how the OpenAPI document describes it."""

    handler: str
    takes: Takes
    summary: str
    # A schema name under the document's components (shared.openapi.COMPONENTS).
    request_schema: str | None = None
    ok_status: int = 200
    ok_description: str = "OK"
    # Media types of the success answer; application/json gets ``ok_schema`` (default: any object).
    ok_media: tuple[str, ...] = ("application/json",)
    ok_schema: str | None = None
    # Error statuses the gateway documents for this operation (401 is added to every keyed route).
    errors: tuple[str, ...] = ()
    # The query parameters an "id_query" or "query" operation accepts (validated; relayed re-encoded).
    query: tuple[QueryParam, ...] = ()
    body_limit: BodyLimit = "request"
    # The media type of ``request_schema`` (multipart/form-data for file uploads).
    request_media: str = "application/json"


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """An OpenAI-compatible route behind a function key, answered by ``shared.http.serve``.

    It is registered for every method, so that the app (not the host) answers a wrong method with an
    OpenAI-shaped 405 and answers CORS preflights; ``operations`` maps the methods it really serves.
    """

    path: str  # after the host's route prefix (``/api``), in the Functions route syntax
    function: str  # the Functions function name: stable (telemetry, the infra tests, keys refer to it)
    operations: Mapping[str, Operation]

    @property
    def parameter(self) -> str | None:
        """The route's path parameter (``{job_id}``), if it has one."""
        found = PARAMETER.search(self.path)
        return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class PublicRoute:
    """An anonymous route (no function key; also in the Bicep's ``authExcludedPaths``, which
    tests/infra keeps equal to these): a plain handler ``async (Request) -> Response`` with nothing of
    the API's machinery in front of it."""

    path: str
    function: str
    handler: str
    methods: tuple[str, ...] = ("GET",)
    # Set for the routes the OpenAPI document lists (the health probe); unset for the document
    # itself and the sample page.
    summary: str | None = None


# A path parameter in a route: ``{job_id}``, or ``{*path}`` for the rest of the path.
PARAMETER = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)\}")


def _relayed_post(handler: str, summary: str, schema: str, *, streams: bool) -> Operation:
    """A POST relayed to the upstream: its answer as JSON, or as server-sent events when streaming."""
    media = ("application/json", "text/event-stream") if streams else ("application/json",)
    return Operation(handler, "body", summary, request_schema=schema, ok_description="The upstream's answer, relayed",
                     ok_media=media, errors=RELAYED_ERRORS)


def _by_id(handler: str, summary: str, answer: str, errors: tuple[str, ...],
           media: tuple[str, ...] = ("application/json",)) -> Operation:
    """An operation on the one item the route's path parameter names; ``answer`` describes its success."""
    return Operation(handler, "id", summary, ok_description=answer, ok_media=media, errors=errors)


def _paged_list(handler: str, summary: str, item: str, items: str) -> Operation:
    """A GET of the caller's own ``items``, newest first, paged by ``limit`` (1-100, default 20) and ``after``."""
    return Operation(handler, "query", summary, ok_description=f"A list of {items}", errors=("400", "502"),
                     query=(QueryParam("limit", "integer", f"{items.capitalize()} per page (1-100, default 20)",
                                       minimum=1, maximum=100),
                            QueryParam("after", "string", f"Cursor: the last {item} id of the previous page")))


# What Azure's v1 description (and the SDKs) accept as ``include[]``: extra output data to return.
INCLUDABLE = ("code_interpreter_call.outputs", "computer_call_output.output.image_url", "file_search_call.results",
              "message.input_image.image_url", "message.output_text.logprobs", "reasoning.encrypted_content")
_INCLUDE = QueryParam("include[]", "enum", "Extra output data to include", choices=INCLUDABLE, many=True)
RETRIEVE_QUERY = (
    _INCLUDE,
    QueryParam("include_obfuscation", "boolean", "Pad streamed delta events (default true)"),
    QueryParam("stream", "boolean", "Stream a background response's events (text/event-stream)"),
    QueryParam("starting_after", "integer", "With stream=true: resume after this event's sequence_number",
               minimum=0, maximum=2**31 - 1),
)
INPUT_ITEMS_QUERY = (
    _INCLUDE,
    QueryParam("limit", "integer", "Items per page (1-100, default 20)", minimum=1, maximum=100),
    QueryParam("order", "enum", "asc or desc", choices=("asc", "desc")),
    QueryParam("after", "string", "Cursor: the item id to list after"),
    QueryParam("before", "string", "Cursor: the item id to list before"),
)
_STORED = ("400", "404", "429", "502", "504")
FILES_LIST_QUERY = (
    QueryParam("purpose", "string", "Only files with this purpose (batch, batch_output)"),
    QueryParam("limit", "integer", "Files per page (1-10000, default 10000)", minimum=1, maximum=10000),
    QueryParam("order", "enum", "By created_at: desc (default) or asc", choices=("asc", "desc")),
    QueryParam("after", "string", "Cursor: the last file id of the previous page"),
)
JOB_RESULTS_QUERY = (
    QueryParam("encoding_format", "enum", "float (default), or base64: little-endian float32 as OpenAI's embeddings",
               choices=("float", "base64")),
)

API_ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("v1/chat/completions", "chat_completions", {"POST": _relayed_post(
        "shared.gateway:chat_completions", 'Chat Completions (stream with "stream": true)', "ChatCompletionRequest",
        streams=True)}),
    ApiRoute("v1/responses", "responses_create", {"POST": _relayed_post(
        "shared.gateway:create_response", 'Responses API (stream with "stream": true)', "ResponsesRequest",
        streams=True)}),
    ApiRoute("v1/responses/{response_id}", "responses_item", {
        "GET": Operation("shared.gateway:retrieve_response", "id_query",
                         "A stored response; a background one's events with stream=true (resume: starting_after)",
                         ok_description="The stored response, or its events",
                         ok_media=("application/json", "text/event-stream"), errors=_STORED, query=RETRIEVE_QUERY),
        "DELETE": _by_id("shared.gateway:delete_response", "Delete a stored response", "The stored response",
                         ("404", "429", "502", "504")),
    }),
    ApiRoute("v1/responses/{response_id}/cancel", "responses_cancel", {
        "POST": _by_id("shared.gateway:cancel_response", "Cancel a background response", "The cancelled response",
                       _STORED),
    }),
    ApiRoute("v1/responses/{response_id}/input_items", "responses_input_items", {
        "GET": Operation("shared.gateway:list_input_items", "id_query", "A stored response's input items (paged)",
                         ok_description="A list of items", errors=_STORED, query=INPUT_ITEMS_QUERY),
    }),
    ApiRoute("v1/embeddings", "embeddings", {"POST": _relayed_post(
        "shared.gateway:embeddings", "Embeddings (synchronous)", "EmbeddingsRequest", streams=False)}),
    ApiRoute("v1/embeddings/jobs", "embedding_jobs", {
        "POST": Operation("shared.jobs.service:submit", "body", "Submit an embedding job",
                          request_schema="EmbeddingJobRequest", ok_status=202,
                          ok_description="Queued; Location names the job", errors=("400", "404", "413", "422", "502")),
        "GET": _paged_list("shared.jobs.service:list_jobs", "The caller's embedding jobs, newest first (paged)",
                           "job", "jobs"),
    }),
    ApiRoute("v1/embeddings/jobs/{job_id}", "embedding_job", {
        "GET": _by_id("shared.jobs.service:status", "An embedding job's status and progress", "The job",
                      ("404", "502")),
    }),
    ApiRoute("v1/embeddings/jobs/{job_id}/cancel", "embedding_job_cancel", {
        "POST": _by_id("shared.jobs.service:cancel", "Cancel an embedding job (finished lines are kept)",
                       "The cancelled job", ("404", "409", "502")),
    }),
    ApiRoute("v1/embeddings/jobs/{job_id}/results", "embedding_job_results", {
        "GET": Operation("shared.jobs.service:results", "id_query",
                         "An embedding job's results as JSONL, in input order", ok_description="JSONL",
                         ok_media=("application/x-ndjson",), errors=("400", "404", "409", "502"),
                         query=JOB_RESULTS_QUERY),
    }),
    ApiRoute("v1/batches", "batches", {
        "POST": Operation("shared.batch.service:create", "body", "Create a batch from an uploaded file (OpenAI's "
                          "Batch API)", request_schema="BatchCreateRequest", ok_description="The batch",
                          errors=("400", "404", "413", "422", "502")),
        "GET": _paged_list("shared.batch.service:list_batches", "The caller's batches, newest first (paged)",
                           "batch", "batches"),
    }),
    ApiRoute("v1/batches/{batch_id}", "batches_item", {
        "GET": _by_id("shared.batch.service:retrieve", "A batch's status, counts and files", "The batch",
                      ("404", "502")),
    }),
    ApiRoute("v1/batches/{batch_id}/cancel", "batches_cancel", {
        "POST": _by_id("shared.batch.service:cancel", "Cancel a batch (finished lines are kept)",
                       "The batch, cancelling", ("404", "409", "502")),
    }),
    ApiRoute("v1/files", "files", {
        "POST": Operation("shared.batch.files:upload", "upload",
                          "Upload a batch input file (multipart: file, purpose=batch, optional expires_after)",
                          request_schema="FileUpload", request_media="multipart/form-data", body_limit="file",
                          ok_description="The file object", errors=("400", "404", "413", "422", "503")),
        "GET": Operation("shared.batch.files:list_files", "query", "The caller's files (paged)",
                         ok_description="A list of files", errors=("400", "503"), query=FILES_LIST_QUERY),
    }),
    ApiRoute("v1/files/{file_id}", "files_item", {
        "GET": _by_id("shared.batch.files:retrieve", "One of the caller's files", "The file object", ("404", "503")),
        "DELETE": _by_id("shared.batch.files:delete", "Delete one of the caller's files", "The deletion status",
                         ("404", "503")),
    }),
    ApiRoute("v1/files/{file_id}/content", "files_content", {
        "GET": _by_id("shared.batch.files:content", "A file's content, as stored", "The file's bytes",
                      ("404", "503"), media=("application/octet-stream",)),
    }),
    ApiRoute("v1/models", "models", {
        "GET": Operation("shared.gateway:list_models", "nothing", "Models callers may use",
                         ok_description="The allowlist", ok_schema="ModelList"),
    }),
    ApiRoute("v1/models/{model}", "models_item", {
        "GET": Operation("shared.gateway:retrieve_model", "id", "One model callers may use (no upstream call)",
                         ok_description="The model", ok_schema="Model", errors=("404",)),
    }),
)

PUBLIC_ROUTES: tuple[PublicRoute, ...] = (
    PublicRoute("health", "health", "shared.http:health", summary="Liveness (anonymous, no upstream call)"),
    # The API description holds no secrets and lets tools and SDK generators start.
    PublicRoute("openapi.json", "openapi", "shared.openapi:serve_document"),
    # The sample page (see shared/sample_page.py for why it is anonymous).
    PublicRoute("ui", "ui_index", "shared.sample_page:page", methods=("GET", "HEAD")),
    PublicRoute("ui/{*path}", "ui_asset", "shared.sample_page:asset", methods=("GET", "HEAD")),
)


@cache
def resolve(handler: str) -> Any:
    """The function a ``"module:function"`` name refers to, imported on first use."""
    module, _, name = handler.partition(":")
    return getattr(importlib.import_module(module), name)
