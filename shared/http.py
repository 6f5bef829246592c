"""The one adapter between HTTP (Starlette requests, as given by the Functions FastAPI extension)
and the gateway's operations: request ids, caller, CORS, method and size checks, errors, timing headers.

``serve`` answers every API route of ``shared.routes``: it calls the route's operation for the
request's method with what the table says it takes (the body, the path parameter with or without
the validated query, or nothing) and turns the ``Reply`` into a response.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from functools import cache
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shared import callers, cors, telemetry
from shared.config import ConfigurationError, Settings, get_settings
from shared.context import Reply, RequestContext, log_request
from shared.errors import (
    GatewayError,
    UpstreamError,
    internal_error,
    method_not_allowed,
    misconfigured,
    origin_not_allowed,
    too_large,
)
from shared.errors.upstream import upstream_error
from shared.query_params import parse_query
from shared.routes import PARAMETER, ApiRoute, Operation, StreamedBody, resolve
from shared.upstream_http import relayed_headers

if TYPE_CHECKING:
    from opentelemetry.trace import Span

logger = logging.getLogger("gateway")
# Room for a file upload's other form fields and part headers on top of FILES_MAX_BYTES (the file
# itself is held to FILES_MAX_BYTES exactly by shared.batch.files).
FORM_OVERHEAD_BYTES = 64 * 1024


def body_limit(operation: Operation, settings: Settings) -> tuple[int, str]:
    """The most bytes the operation's body may have, and the setting that says so."""
    if operation.body_limit == "file":
        return settings.files_max_bytes + FORM_OVERHEAD_BYTES, "FILES_MAX_BYTES"
    return settings.max_request_bytes, "MAX_REQUEST_BYTES"


def _refuse_declared(request: Request, limit: int, setting: str) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, setting)


async def stream_body(request: Request, limit: int, setting: str = "MAX_REQUEST_BYTES") -> AsyncIterator[bytes]:
    """The body as it arrives, refused (413) as soon as it passes ``limit`` (declared or actual size)."""
    _refuse_declared(request, limit, setting)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, setting)
        if chunk:
            yield chunk


async def read_body(request: Request, limit: int, setting: str = "MAX_REQUEST_BYTES") -> bytes:
    """The body, refusing it as soon as it passes ``limit`` (declared or actual size)."""
    return b"".join([chunk async for chunk in stream_body(request, limit, setting)])


def path_param(request: Request, route: ApiRoute) -> str:
    """The route's path parameter. A host that does not fill ``path_params`` gets it from the URL:
    the route's template matched against the end of the path (the route prefix comes before it)."""
    name = route.parameter
    value = request.path_params.get(name) if name else None
    if isinstance(value, str) and value:
        return value
    found = _template(route.path).search(request.url.path)
    return found.group(1) if found else ""


@cache
def _template(path: str) -> re.Pattern[str]:
    """``v1/responses/{response_id}`` as a pattern whose one group is the parameter's value."""
    literals = PARAMETER.split(path)[::2]  # split() also returns the parameter's name between them
    return re.compile("(?:^|/)" + "([^/]+)".join(map(re.escape, literals)) + "/?$")


async def _call(route: ApiRoute, operation: Operation, ctx: RequestContext, request: Request) -> Reply:
    """The operation, called with what the route table says it takes."""
    handler = resolve(operation.handler)  # signatures per ``takes``: checked by tests/unit/test_routes.py
    # Every route reads its query by the same rule, most declaring no names: a parameter a caller adds
    # to the URL is refused or used, never dropped silently (shared.query_params).
    query = parse_query(request.scope.get("query_string", b""), operation.query)
    reply: Reply
    if operation.takes == "body":
        reply = await handler(ctx, await read_body(request, *body_limit(operation, get_settings())))
    elif operation.takes == "upload":
        limit, setting = body_limit(operation, get_settings())
        _refuse_declared(request, limit, setting)  # before the handler starts work on a body it cannot take
        body = StreamedBody(request.headers.get("content-type", ""), stream_body(request, limit, setting))
        reply = await handler(ctx, body)
    elif operation.takes == "id":
        reply = await handler(ctx, path_param(request, route))
    elif operation.takes == "id_query":
        reply = await handler(ctx, path_param(request, route), query)
    elif operation.takes == "query":
        reply = await handler(ctx, query)
    else:
        reply = handler()
    return reply


async def health(request: Request) -> Response:
    """``GET /api/health``: the process is up (no upstream, storage or configuration involved)."""
    return JSONResponse({"status": "ok"})


def _to_response(reply: Reply, ctx: RequestContext, extra: Mapping[str, str]) -> Response:
    headers = {**reply.headers, **extra, "x-request-id": ctx.request_id,
               "x-gateway-overhead-ms": f"{ctx.overhead_ms():.3f}"}
    if reply.events is not None:
        return StreamingResponse(reply.events, status_code=reply.status, headers=headers)
    return Response(reply.body, status_code=reply.status, headers=headers)


def _upstream_error_reply(exc: UpstreamError) -> Reply:
    """An upstream error status, shaped as the gateway answers the same condition (shared.errors.upstream)."""
    return Reply.from_error(upstream_error(exc.response, relayed_headers(exc.response)))


async def serve(request: Request, api_route: ApiRoute) -> Response:
    """Answer one request to an API route with the operation for its method."""
    route, operations = api_route.path, api_route.operations
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        ctx = RequestContext.new(60.0)
        return _to_response(Reply.from_error(misconfigured(exc)), ctx, {})
    ctx = RequestContext.new(settings.request_timeout_seconds)
    identity_error: GatewayError | None = None
    try:
        ctx.caller = callers.identify(request.headers, request.scope.get("query_string", b""))
    except GatewayError as exc:  # refused below, once CORS headers are known (a browser must see it)
        identity_error = exc
    method = request.method
    allowed = (*operations, "OPTIONS")
    origin = request.headers.get("origin")
    cors_headers: dict[str, str] = {}
    if origin is not None:
        if not cors.origin_allowed(origin, settings.cors_allowed_origins, request.headers.get("host")):
            return _finish(request, route, ctx, Reply.from_error(origin_not_allowed(origin)), {})
        cors_headers = cors.response_headers(origin)
    if method == "OPTIONS":
        if origin is not None:
            cors_headers = cors.preflight_headers(origin, allowed, request.headers)
        return _finish(request, route, ctx, Reply(204, headers={"allow": ", ".join(allowed)}), cors_headers)
    operation = operations.get(method)
    span = telemetry.start_request(route, method)
    try:
        if identity_error is not None:
            raise identity_error
        if operation is None:
            raise method_not_allowed(method, tuple(operations))
        with telemetry.activate(span):
            reply = await _call(api_route, operation, ctx, request)
    except GatewayError as exc:
        reply = Reply.from_error(exc)
    except UpstreamError as exc:
        reply = _upstream_error_reply(exc)
    except Exception:
        logger.exception("unhandled error", extra={"request_id": ctx.request_id})
        reply = Reply.from_error(internal_error())
    if span is not None:
        if reply.events is not None:
            reply.events = _traced(reply.events, span, ctx, reply.status)
        else:
            telemetry.end_request(span, ctx, reply.status, ctx.usage)
    return _finish(request, route, ctx, reply, cors_headers)


async def _traced(
    events: AsyncIterator[bytes], span: Span, ctx: RequestContext, status: int
) -> AsyncIterator[bytes]:
    """Ends the request span when the stream ends, with the usage the stream reported."""
    try:
        async for chunk in events:
            yield chunk
    finally:
        telemetry.end_request(span, ctx, status, ctx.usage)


def _finish(request: Request, route: str, ctx: RequestContext, reply: Reply,
            extra: Mapping[str, str]) -> Response:
    response = _to_response(reply, ctx, extra)
    log_request(ctx, method=request.method, route=route, status=reply.status, streamed=reply.events is not None)
    return response
