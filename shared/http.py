"""The one adapter between HTTP (Starlette requests, as given by the Functions FastAPI extension)
and the gateway's operations: request ids, CORS, method and size checks, errors, timing headers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shared import callers, cors, telemetry
from shared.config import ConfigurationError, get_settings
from shared.context import RequestContext
from shared.errors import GatewayError, internal_error, method_not_allowed, too_large
from shared.gateway import Reply, error_reply
from shared.logs import log_request
from shared.upstream import UpstreamError
from shared.upstream_errors import upstream_error_reply

if TYPE_CHECKING:
    from opentelemetry.trace import Span

Handler = Callable[[RequestContext, Request], Awaitable[Reply]]

logger = logging.getLogger("gateway")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing it as soon as it passes ``limit`` (declared or actual size)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def route_param(request: Request, name: str) -> str:
    """A route parameter; falls back to the last path segment for hosts that do not fill path_params."""
    value = request.path_params.get(name)
    if isinstance(value, str) and value:
        return value
    return request.url.path.rstrip("/").rsplit("/", 1)[-1]


def _to_response(reply: Reply, ctx: RequestContext, extra: Mapping[str, str]) -> Response:
    headers = {**reply.headers, **extra, "x-request-id": ctx.request_id,
               "x-gateway-overhead-ms": f"{ctx.overhead_ms():.3f}"}
    if reply.events is not None:
        return StreamingResponse(reply.events, status_code=reply.status, headers=headers)
    return Response(reply.body, status_code=reply.status, headers=headers)


def _upstream_error_reply(exc: UpstreamError) -> Reply:
    """An upstream error status, shaped as the gateway answers the same condition (see upstream_errors)."""
    return upstream_error_reply(exc.response)


async def serve(request: Request, handlers: Mapping[str, Handler], *, route: str) -> Response:
    """Answer one request with the handler for its method."""
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        ctx = RequestContext.new(60.0)
        error = GatewayError(500, f"The gateway is misconfigured: {exc}", type="server_error",
                             code="configuration_error")
        return _to_response(error_reply(error), ctx, {})
    ctx = RequestContext.new(settings.request_timeout_seconds)
    identity_error: GatewayError | None = None
    try:
        ctx.caller = callers.identify(request.headers, request.scope.get("query_string", b""))
    except GatewayError as exc:  # refused below, once CORS headers are known (a browser must see it)
        identity_error = exc
    method = request.method
    allowed = (*handlers, "OPTIONS")
    origin = request.headers.get("origin")
    cors_headers: dict[str, str] = {}
    if origin is not None:
        if not cors.origin_allowed(origin, settings.cors_allowed_origins, request.headers.get("host")):
            error = GatewayError(403, f"Origin {origin!r} is not allowed (CORS_ALLOWED_ORIGINS).",
                                 code="origin_not_allowed")
            return _finish(request, route, ctx, error_reply(error), {})
        cors_headers = cors.response_headers(origin)
    if method == "OPTIONS":
        if origin is not None:
            cors_headers = cors.preflight_headers(origin, allowed, request.headers)
        return _finish(request, route, ctx, Reply(204, headers={"allow": ", ".join(allowed)}), cors_headers)
    handler = handlers.get(method)
    span = telemetry.start_request(route, method)
    try:
        if identity_error is not None:
            raise identity_error
        if handler is None:
            raise method_not_allowed(method, tuple(handlers))
        with telemetry.activate(span):
            reply = await handler(ctx, request)
    except GatewayError as exc:
        reply = error_reply(exc)
    except UpstreamError as exc:
        reply = _upstream_error_reply(exc)
    except Exception:
        logger.exception("unhandled error", extra={"request_id": ctx.request_id})
        reply = error_reply(internal_error())
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
