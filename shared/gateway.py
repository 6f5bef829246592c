"""The OpenAI-compatible operations: validate, route to a deployment, call upstream, shape a reply.

HTTP-agnostic on purpose: the blueprints adapt requests and replies, tests call these directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx2

from shared.config import Settings, get_settings
from shared.context import RequestContext
from shared.errors import GatewayError, not_found
from shared.relay import relay_events
from shared.schemas import ChatCompletionRequest, EmbeddingsRequest, ResponsesRequest
from shared.upstream import send
from shared.validation import check_mcp_tools, parse_body, resolve_model, with_model

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


async def _forward(ctx: RequestContext, path: str, raw: bytes, model: str, stream: bool,
                   settings: Settings) -> Reply:
    deployment = resolve_model(model, settings)
    ctx.model = deployment
    body = raw if deployment == model else with_model(raw, deployment)
    response = await send(ctx, "POST", path, content=body, stream=stream)
    headers = relayed_headers(response)
    if stream:
        headers["content-type"] = "text/event-stream; charset=utf-8"
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        return Reply(response.status_code, headers=headers, events=relay_events(response, ctx))
    return Reply(response.status_code, body=response.content, headers=headers)


async def chat_completions(ctx: RequestContext, raw: bytes) -> Reply:
    request = parse_body(raw, ChatCompletionRequest)
    return await _forward(ctx, "/chat/completions", raw, request.model, bool(request.stream), get_settings())


async def create_response(ctx: RequestContext, raw: bytes) -> Reply:
    settings = get_settings()
    request = parse_body(raw, ResponsesRequest)
    check_mcp_tools(request.tools, settings)
    return await _forward(ctx, "/responses", raw, request.model, bool(request.stream), settings)


async def embeddings(ctx: RequestContext, raw: bytes) -> Reply:
    request = parse_body(raw, EmbeddingsRequest)
    return await _forward(ctx, "/embeddings", raw, request.model, False, get_settings())


def _response_path(response_id: str) -> str:
    if not response_id or "/" in response_id or len(response_id) > 256:
        raise not_found(f"No response with id {response_id!r}.", param="response_id", code="not_found")
    return f"/responses/{response_id}"


async def retrieve_response(ctx: RequestContext, response_id: str) -> Reply:
    response = await send(ctx, "GET", _response_path(response_id))
    return Reply(response.status_code, body=response.content, headers=relayed_headers(response))


async def delete_response(ctx: RequestContext, response_id: str) -> Reply:
    response = await send(ctx, "DELETE", _response_path(response_id))
    return Reply(response.status_code, body=response.content, headers=relayed_headers(response))


def list_models() -> Reply:
    """The names callers may use, from configuration: no upstream call, no deployment leaks."""
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "azure-openai-gateway"}
            for name in get_settings().models]
    return Reply(200, body=json.dumps({"object": "list", "data": data}).encode(),
                 headers={"content-type": "application/json"})


def error_reply(error: GatewayError) -> Reply:
    return Reply(error.status, body=error.to_json(), headers={"content-type": "application/json", **error.headers})
