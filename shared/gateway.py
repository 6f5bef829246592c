"""The OpenAI-compatible operations: validate, route to a deployment, call upstream, shape a reply.

HTTP-agnostic on purpose: the blueprints adapt requests and replies, tests call these directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from shared import telemetry, usage
from shared.backends import get_backend_pool
from shared.config import Settings, get_settings
from shared.context import Reply, RequestContext, capture_content
from shared.embeddings_format import asked_encoding, in_asked_encoding
from shared.errors import (
    GatewayError,
    UpstreamError,
    max_output_tokens_required,
    model_not_found,
    not_found,
    sse_error_event,
)
from shared.mcp_allowlist import check_mcp_tools
from shared.ownership import get_owners
from shared.query_params import QueryValue, encode_query
from shared.quota import CallerQuota, Reservation, get_quota
from shared.relay import relay_events
from shared.request_models import ChatCompletionRequest, EmbeddingsRequest, ResponsesRequest
from shared.upstream import Method, send
from shared.upstream_http import relayed_headers
from shared.validation import check_embedding_inputs, parse_body, resolve_model, with_fields

if TYPE_CHECKING:
    from shared.upstream_http import UpstreamResponse

ModelRequest = ChatCompletionRequest | ResponsesRequest | EmbeddingsRequest

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


@dataclass(slots=True)
class _Metering:
    """One call's reservation under a per-caller limit, and what is known of its use until settled."""

    quota: CallerQuota
    reservation: Reservation
    prompt: int
    meter: usage.StreamMeter | None = None
    settled: bool = False

    def settle(self, reported: usage.Usage | None, *, generated: bool = True) -> None:
        """Charge what the call used: the reported usage; else, if the upstream may have generated
        anything, the reservation or the prompt estimate plus the output relayed, whichever is more."""
        if self.settled:
            return
        self.settled = True
        if reported is not None:
            actual = reported.total_tokens
        elif not generated:
            actual = 0
        else:
            relayed = self.meter.output_tokens if self.meter is not None else 0
            actual = max(self.reservation.tokens, self.prompt + relayed)
        self.quota.settle(self.reservation, actual)


def _settle(metering: _Metering | None, ctx: RequestContext) -> None:
    if metering is not None:
        metering.settle(ctx.usage)


async def _watching_usage(events: AsyncIterator[bytes], ctx: RequestContext, metering: _Metering | None,
                          meter: usage.StreamMeter | None, background: bool = False) -> AsyncIterator[bytes]:
    """Notes the usage the stream reports (once, for limits and telemetry) and settles at its end,
    however it ends (finished, failed, or closed early by the caller)."""
    response_id: str | None = None
    try:
        async for chunk in events:
            if meter is None:
                ctx.usage = usage.from_event(chunk) or ctx.usage
                yield chunk
                continue
            if background and response_id is None and (match := _RESPONSE_ID.search(chunk, 0, 4096)):
                response_id = match.group(1).decode()
            relayed = meter.feed(chunk)
            ctx.usage = meter.usage or ctx.usage
            if relayed:  # empty: it held only the usage chunk the caller did not ask for
                yield relayed
    finally:
        _settle(metering, ctx)
        if metering is not None and background and ctx.usage is None and response_id:
            # Cut before it finished, but a background response goes on generating upstream.
            metering.quota.hold(response_id, metering.reservation)


_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _estimate_tokens(raw: bytes, request: BaseModel, allowance: int = 0, limit: int | None = None) -> tuple[int, int]:
    """(prompt, output) to reserve: the prompt from the body size (JSON overhead makes it generous);
    the output from the caller's cap, else ``allowance`` clipped so that an idle caller can always
    make the call; either times ``n`` choices."""
    extra = request.model_extra or {}
    prompt = -(-len(raw) // 4)
    choices = _positive_int(extra.get("n")) or 1
    caps = [cap for name in _OUTPUT_CAPS if (cap := _positive_int(extra.get(name))) is not None]
    if caps:
        return prompt, max(caps) * choices
    output = allowance * choices
    if limit is not None:
        output = max(0, min(output, limit - prompt))
    return prompt, output


def _wants_usage(request: BaseModel) -> tuple[bool, dict[str, object] | None]:
    """Whether a chat stream already asks for usage, and its ``stream_options`` when it is an object."""
    options = (request.model_extra or {}).get("stream_options")
    if not isinstance(options, dict):
        return False, None if options is not None else {}
    return options.get("include_usage") is True, options


def _start_metering(ctx: RequestContext, quota: CallerQuota, raw: bytes, request: ModelRequest, path: str,
                    settings: Settings) -> _Metering:
    extra = request.model_extra or {}
    capped = _positive_int(extra.get("max_output_tokens")) is not None
    if path == "/responses" and extra.get("background") is True and not capped:
        # Its output is generated after the reply: only a cap bounds what it can cost.
        raise max_output_tokens_required()
    allowance = 0 if path == "/embeddings" else settings.caller_output_token_allowance
    prompt, output = _estimate_tokens(raw, request, allowance, quota.limit)
    return _Metering(quota, quota.reserve(ctx.caller, prompt + output), prompt)


async def _forward(ctx: RequestContext, path: str, raw: bytes, request: ModelRequest, settings: Settings,
                   *, stream: bool = False, previous_response_id: str | None = None) -> Reply:
    deployment = resolve_model(request.model, settings)
    ctx.model = deployment
    if settings.log_content:
        capture_content(ctx, "request", raw)
    fields: dict[str, object] = {} if deployment == request.model else {"model": deployment}
    quota = get_quota()
    metering = _start_metering(ctx, quota, raw, request, path, settings) if quota else None
    strip_usage = False
    if metering is not None and stream and path == "/chat/completions":
        asked, options = _wants_usage(request)
        if not asked and options is not None:
            # Ask for the usage chunk so the stream is charged what it used; the caller still gets
            # exactly the stream it asked for (StreamMeter takes the usage out again).
            fields["stream_options"] = {**options, "include_usage": True}
            strip_usage = True
    body = with_fields(raw, fields) if fields else raw
    background = path == "/responses" and (request.model_extra or {}).get("background") is True
    pool = get_backend_pool()
    affinity = path == "/responses" and pool.multiple
    pinned = pool.home_of(previous_response_id)
    try:
        response = await send(ctx, "POST", path, content=body, stream=stream, pinned=pinned,
                              probe_not_found=affinity and previous_response_id is not None and pinned is None)
    except UpstreamError:
        if metering is not None:
            metering.settle(None, generated=False)  # the upstream refused it: nothing was generated
        raise
    except GatewayError as exc:
        if metering is not None:
            # Throttled or every backend cooling down: never sent. Timed out or cut off: the upstream
            # may have generated, and no usage will come, so the reservation stands.
            metering.settle(None, generated=exc.status != 429)
        raise
    except BaseException:
        if metering is not None:
            metering.settle(None)  # the caller left (or worse) after sending: the reservation stands
        raise
    # Usage is parsed once, and only when per-caller limits or telemetry will read it.
    needs_usage = metering is not None or telemetry.tracer() is not None
    headers = relayed_headers(response)
    if metering is not None:
        headers["x-caller-ratelimit-limit-tokens"] = str(metering.quota.limit)
        headers["x-caller-ratelimit-remaining-tokens"] = str(metering.quota.remaining(ctx.caller))
    if stream:
        headers["content-type"] = "text/event-stream; charset=utf-8"
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        events = relay_events(response, ctx)
        if affinity:
            events = _noting_first_event(events, ctx)
        if needs_usage:
            meter = None
            if metering is not None:
                api: Literal["chat", "responses"] = "chat" if path == "/chat/completions" else "responses"
                meter = metering.meter = usage.StreamMeter(api, strip_usage=strip_usage)
            events = _watching_usage(events, ctx, metering, meter, background)
        return Reply(response.status_code, headers=headers, events=events)
    if affinity:
        _remember_response(ctx, response.content)
    if settings.log_content:
        capture_content(ctx, "response", response.content)
    if needs_usage:
        ctx.usage = usage.from_body(response.content)
        _settle(metering, ctx)
        if metering is not None and background and ctx.usage is None:
            _hold_background(metering, response.content)
    return Reply(response.status_code, body=response.content, headers=headers)


def _hold_background(metering: _Metering, body: bytes) -> None:
    """A background response answers before it has generated: keep its reservation until it is seen
    finished (:func:`_settle_background`)."""
    match = _RESPONSE_ID.search(body, 0, 4096)
    if match:
        metering.quota.hold(match.group(1).decode(), metering.reservation)


_FINISHED = frozenset({"completed", "incomplete", "failed", "cancelled"})


def _settle_background(response_id: str, body: bytes) -> None:
    """A retrieved response that finished settles the reservation held for it, if this instance holds one."""
    quota = get_quota()
    if quota is None or b'"usage"' not in body:
        return
    try:
        data = json.loads(body)
    except ValueError:
        return
    if isinstance(data, dict) and data.get("status") in _FINISHED:
        reported = usage.from_mapping(data.get("usage"))
        if reported is not None:
            quota.settle_held(response_id, reported.total_tokens)


async def chat_completions(ctx: RequestContext, raw: bytes) -> Reply:
    settings = get_settings()
    request = parse_body(raw, ChatCompletionRequest)
    check_mcp_tools(request.tools, settings)
    return await _forward(ctx, "/chat/completions", raw, request, settings, stream=bool(request.stream))


async def create_response(ctx: RequestContext, raw: bytes) -> Reply:
    settings = get_settings()
    request = parse_body(raw, ResponsesRequest)
    check_mcp_tools(request.tools, settings)
    if request.previous_response_id is not None:
        # Continuing a conversation reads it back: only its creator may, checked before any upstream call.
        await get_owners().require(ctx.caller, request.previous_response_id, param="previous_response_id",
                                   code="previous_response_not_found")
    reply = await _forward(ctx, "/responses", raw, request, settings, stream=bool(request.stream),
                           previous_response_id=request.previous_response_id)
    if (request.model_extra or {}).get("store") is not False and reply.status < 300:
        await _record_owner(ctx, reply)
    return reply


async def _record_owner(ctx: RequestContext, reply: Reply) -> None:
    """Record the caller as the creator of the stored response this reply carries (or will carry)."""
    if reply.events is not None:
        reply.events = _recording_owner(reply.events, ctx)
        return
    match = _RESPONSE_ID.search(reply.body, 0, 4096)
    if match:  # none: nothing was stored, or nothing we could name; either way nobody can reach it
        await get_owners().record(match.group(1).decode(), ctx.caller)


async def _recording_owner(events: AsyncIterator[bytes], ctx: RequestContext) -> AsyncIterator[bytes]:
    """Starts the record when the id arrives (the first event, ``response.created``) without holding
    the relay back, and waits for it before the stream ends: a failed record ends it with an error event.
    Only the first chunk is searched: later events carry model output, never the id to record."""
    recording = None
    first = True
    async for chunk in events:
        if first:
            first = False
            if match := _RESPONSE_ID.search(chunk, 0, 4096):
                recording = get_owners().start_record(match.group(1).decode(), ctx.caller)
        yield chunk
    if recording is not None:
        try:
            await recording
        except GatewayError as exc:
            yield sse_error_event(exc)


async def embeddings(ctx: RequestContext, raw: bytes) -> Reply:
    request = parse_body(raw, EmbeddingsRequest)
    check_embedding_inputs(request)
    reply = await _forward(ctx, "/embeddings", raw, request, get_settings())
    if reply.status == 200:
        wanted = asked_encoding((request.model_extra or {}).get("encoding_format"))
        reply.body = in_asked_encoding(reply.body, wanted)
    return reply


# Letters, digits, "_" and "-" only: a "." would let "." and ".." become path segments that HTTP
# clients resolve to another upstream URL, and real ids (resp_...) never need one.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _response_path(response_id: str) -> str:
    """Response ids are opaque but plain; anything else cannot exist and must not reach a URL."""
    if not _SAFE_ID.fullmatch(response_id):
        raise not_found(f"No response with id {response_id!r}.", param="response_id", code="not_found")
    return f"/responses/{response_id}"


async def _stored_response(ctx: RequestContext, method: Literal["GET", "DELETE"], response_id: str,
                           query: str = "") -> Reply:
    """A stored response is its creator's alone (others get 404, as if it did not exist), and lives on
    the backend that created it: go there, or look for it."""
    path = _response_path(response_id)
    owners = get_owners()
    await owners.require(ctx.caller, response_id)
    response = await _send_to_home(ctx, method, response_id, path + query)
    if method == "GET" and response.status_code == 200:
        _settle_background(response_id, response.content)
    if method == "DELETE":
        await owners.forget(response_id)
    return Reply(response.status_code, body=response.content, headers=relayed_headers(response))


async def retrieve_response(ctx: RequestContext, response_id: str, query: dict[str, QueryValue]) -> Reply:
    """``GET /responses/{id}``: the stored response, or with ``stream=true`` a background response's
    events (from ``starting_after`` on), relayed as they come. Only the validated query is relayed."""
    if query.get("stream") is not True:
        return await _stored_response(ctx, "GET", response_id, encode_query(query))
    path = _response_path(response_id) + encode_query(query)
    await get_owners().require(ctx.caller, response_id)
    response = await _send_to_home(ctx, "GET", response_id, path, stream=True)
    headers = {**relayed_headers(response), **_SSE_HEADERS}
    return Reply(response.status_code, headers=headers,
                 events=_settling_when_finished(relay_events(response, ctx), response_id))


_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                "x-accel-buffering": "no"}


async def _settling_when_finished(events: AsyncIterator[bytes], response_id: str) -> AsyncIterator[bytes]:
    """A resumed stream that reaches the response's final event settles the reservation held for it."""
    async for chunk in events:
        if (quota := get_quota()) is not None and (reported := usage.from_event(chunk)) is not None:
            quota.settle_held(response_id, reported.total_tokens)
        yield chunk


async def cancel_response(ctx: RequestContext, response_id: str) -> Reply:
    """``POST /responses/{id}/cancel``: stop a background response (its creator only, on its backend).
    The answer is the response as it ended: its usage, if reported, settles the held reservation."""
    path = _response_path(response_id) + "/cancel"
    await get_owners().require(ctx.caller, response_id)
    response = await _send_to_home(ctx, "POST", response_id, path)
    if response.status_code == 200:
        _settle_background(response_id, response.content)
    return Reply(response.status_code, body=response.content, headers=relayed_headers(response))


async def list_input_items(ctx: RequestContext, response_id: str, query: dict[str, QueryValue]) -> Reply:
    """``GET /responses/{id}/input_items``: the items a stored response was made from, paged as asked."""
    path = _response_path(response_id) + "/input_items" + encode_query(query)
    await get_owners().require(ctx.caller, response_id)
    response = await _send_to_home(ctx, "GET", response_id, path)
    return Reply(response.status_code, body=response.content, headers=relayed_headers(response))


async def _send_to_home(ctx: RequestContext, method: Method, response_id: str, path: str, *,
                        stream: bool = False) -> UpstreamResponse:
    """Send to the backend that holds the response (or, not knowing it, look for it on each)."""
    pool = get_backend_pool()
    pinned = pool.home_of(response_id)
    return await send(ctx, method, path, stream=stream, pinned=pinned,
                      probe_not_found=pool.multiple and pinned is None)


async def delete_response(ctx: RequestContext, response_id: str) -> Reply:
    return await _stored_response(ctx, "DELETE", response_id)


async def retrieve_model(ctx: RequestContext, model: str) -> Reply:
    """``GET /models/{model}``: one name callers may use, from configuration (no upstream call)."""
    if model not in get_settings().models:
        raise model_not_found(model)
    return Reply(200, body=json.dumps(_model_entry(model)).encode(), headers={"content-type": "application/json"})


def _model_entry(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "azure-openai-gateway"}


def list_models() -> Reply:
    """The names callers may use, from configuration: no upstream call, no deployment leaks."""
    data = [_model_entry(name) for name in get_settings().models]
    return Reply(200, body=json.dumps({"object": "list", "data": data}).encode(),
                 headers={"content-type": "application/json"})

