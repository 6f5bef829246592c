"""The OpenAI-compatible operations: validate, route to a deployment, call upstream, shape a reply.

HTTP-agnostic on purpose: the blueprints adapt requests and replies, tests call these directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from shared import telemetry, usage
from shared.config import Settings, get_settings
from shared.context import RequestContext
from shared.errors import GatewayError, not_found
from shared.logs import capture_content
from shared.quota import CallerQuota, Reservation, get_quota
from shared.relay import relay_events
from shared.schemas import ChatCompletionRequest, EmbeddingsRequest, ResponsesRequest
from shared.upstream import get_backend_pool, send
from shared.validation import check_mcp_tools, parse_body, resolve_model, with_model

if TYPE_CHECKING:
    import httpx2

ModelRequest = ChatCompletionRequest | ResponsesRequest | EmbeddingsRequest

# Upstream headers worth passing on: rate-limit state lets callers pace themselves, and the
# upstream's own ids let support trace a request through Azure.
RELAYED_HEADERS = (
    "content-type",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "apim-request-id",
    "openai-processing-ms",
)


@dataclass(slots=True)
class Reply:
    """What to send back: a complete body, or an event stream relayed as it arrives."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: AsyncIterator[bytes] | None = None


def relayed_headers(response: httpx2.Response) -> dict[str, str]:
    headers = response.headers
    return {name: value for name in RELAYED_HEADERS if (value := headers.get(name)) is not None}


# A response object's id comes first in its JSON (and in the first streamed event): a bounded
# regex finds it without parsing a body the gateway otherwise relays untouched.
_RESPONSE_ID = re.compile(rb'"id"\s*:\s*"(resp_[A-Za-z0-9_-]+)"')


def _remember_response(ctx: RequestContext, head: bytes) -> None:
    match = _RESPONSE_ID.search(head, 0, 4096)
    if match and ctx.backend:
        get_backend_pool().remember(match.group(1).decode(), ctx.backend)


async def _noting_first_event(events: AsyncIterator[bytes], ctx: RequestContext) -> AsyncIterator[bytes]:
    first = True
    async for chunk in events:
        if first:
            _remember_response(ctx, chunk)
            first = False
        yield chunk


def _settle(quota: CallerQuota | None, reservation: Reservation | None, ctx: RequestContext) -> None:
    if quota is not None and reservation is not None:
        quota.settle(reservation, ctx.usage.total_tokens if ctx.usage else None)


async def _watching_usage(events: AsyncIterator[bytes], ctx: RequestContext, quota: CallerQuota | None,
                          reservation: Reservation | None) -> AsyncIterator[bytes]:
    """Notes the usage the stream reports (once, for limits and telemetry) and settles at its end."""
    try:
        async for chunk in events:
            ctx.usage = usage.from_event(chunk) or ctx.usage
            yield chunk
    finally:
        _settle(quota, reservation, ctx)


def _estimate_tokens(raw: bytes, request: BaseModel) -> int:
    """Prompt from the body size (JSON overhead makes it generous) plus the requested output cap."""
    extra = request.model_extra or {}
    cap = next((v for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
                if isinstance(v := extra.get(k), int) and v > 0), 0)
    return -(-len(raw) // 4) + cap


async def _forward(ctx: RequestContext, path: str, raw: bytes, request: ModelRequest, settings: Settings,
                   *, stream: bool = False, previous_response_id: str | None = None) -> Reply:
    deployment = resolve_model(request.model, settings)
    ctx.model = deployment
    if settings.log_content:
        capture_content(ctx, "request", raw)
    body = raw if deployment == request.model else with_model(raw, deployment)
    quota = get_quota()
    reservation = quota.reserve(ctx.caller, _estimate_tokens(raw, request)) if quota else None
    pool = get_backend_pool()
    affinity = path == "/responses" and pool.multiple
    pinned = pool.home_of(previous_response_id)
    try:
        response = await send(ctx, "POST", path, content=body, stream=stream, pinned=pinned,
                              probe_not_found=affinity and previous_response_id is not None and pinned is None)
    except BaseException:
        if quota and reservation:
            quota.settle(reservation, 0)  # nothing was generated
        raise
    # Usage is parsed once, and only when per-caller limits or telemetry will read it.
    needs_usage = quota is not None or telemetry.tracer() is not None
    headers = relayed_headers(response)
    if quota and reservation:
        headers["x-caller-ratelimit-limit-tokens"] = str(quota.limit)
        headers["x-caller-ratelimit-remaining-tokens"] = str(quota.remaining(ctx.caller))
    if stream:
        headers["content-type"] = "text/event-stream; charset=utf-8"
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        events = relay_events(response, ctx)
        if affinity:
            events = _noting_first_event(events, ctx)
        if needs_usage:
            events = _watching_usage(events, ctx, quota, reservation)
        return Reply(response.status_code, headers=headers, events=events)
    if affinity:
        _remember_response(ctx, response.content)
    if settings.log_content:
        capture_content(ctx, "response", response.content)
    if needs_usage:
        ctx.usage = usage.from_body(response.content)
        _settle(quota, reservation, ctx)
    return Reply(response.status_code, body=response.content, headers=headers)


async def chat_completions(ctx: RequestContext, raw: bytes) -> Reply:
    request = parse_body(raw, ChatCompletionRequest)
    return await _forward(ctx, "/chat/completions", raw, request, get_settings(), stream=bool(request.stream))


async def create_response(ctx: RequestContext, raw: bytes) -> Reply:
    settings = get_settings()
    request = parse_body(raw, ResponsesRequest)
    check_mcp_tools(request.tools, settings)
    return await _forward(ctx, "/responses", raw, request, settings, stream=bool(request.stream),
                          previous_response_id=request.previous_response_id)


async def embeddings(ctx: RequestContext, raw: bytes) -> Reply:
    request = parse_body(raw, EmbeddingsRequest)
    return await _forward(ctx, "/embeddings", raw, request, get_settings())


_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")


def _response_path(response_id: str) -> str:
    """Response ids are opaque but plain; anything else cannot exist and must not reach a URL."""
    if not _SAFE_ID.fullmatch(response_id):
        raise not_found(f"No response with id {response_id!r}.", param="response_id", code="not_found")
    return f"/responses/{response_id}"


async def _stored_response(ctx: RequestContext, method: Literal["GET", "DELETE"], response_id: str) -> Reply:
    """A stored response lives on the backend that created it: go there, or look for it."""
    path = _response_path(response_id)
    pool = get_backend_pool()
    pinned = pool.home_of(response_id)
    response = await send(ctx, method, path, pinned=pinned, probe_not_found=pool.multiple and pinned is None)
    return Reply(response.status_code, body=response.content, headers=relayed_headers(response))


async def retrieve_response(ctx: RequestContext, response_id: str) -> Reply:
    return await _stored_response(ctx, "GET", response_id)


async def delete_response(ctx: RequestContext, response_id: str) -> Reply:
    return await _stored_response(ctx, "DELETE", response_id)


def list_models() -> Reply:
    """The names callers may use, from configuration: no upstream call, no deployment leaks."""
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "azure-openai-gateway"}
            for name in get_settings().models]
    return Reply(200, body=json.dumps({"object": "list", "data": data}).encode(),
                 headers={"content-type": "application/json"})


def error_reply(error: GatewayError) -> Reply:
    return Reply(error.status, body=error.to_json(), headers={"content-type": "application/json", **error.headers})
