"""OpenTelemetry to Application Insights, only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set.

Without it nothing is imported and every hook below is a no-op, so cold start and the hot path pay
nothing. With it, each request gets a span (model, backend, status, retries, tokens, time to first
token, gateway overhead) and each upstream attempt a child span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from shared import identity
from shared.lazy import process_wide

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from shared.context import RequestContext
    from shared.usage import Usage

@process_wide
def tracer() -> Tracer | None:
    """The gateway's tracer, configured on first use; None when telemetry is off."""
    if not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        return None
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import trace

    # Entra auth for the exporter: the same identity rule (and credential cache) as everything else.
    who = identity.for_application_insights(os.environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""))
    configure_azure_monitor(credential=identity.sync_credential(who) if who else None, logger_name="gateway")
    found: Tracer = trace.get_tracer("azure-openai-gateway")
    return found


def start_request(route: str, method: str) -> Span | None:
    active = tracer()
    if active is None:
        return None
    return active.start_span(f"{method} {route}", attributes={"http.request.method": method, "http.route": route})


def activate(span: Span | None) -> AbstractContextManager[Any]:
    """Make the request span current while the handler runs, so attempt spans become its children."""
    if span is None:
        return nullcontext()
    from opentelemetry import trace

    return trace.use_span(span, end_on_exit=False)


@contextmanager
def attempt_span(ctx: RequestContext, backend: str) -> Iterator[Span | None]:
    active = tracer()
    if active is None:
        yield None
        return
    with active.start_as_current_span("upstream attempt", attributes={
            "gateway.backend": backend, "gateway.attempt": ctx.attempts,
            "gen_ai.request.model": ctx.model or ""}) as span:
        yield span


def end_request(span: Span, ctx: RequestContext, status: int, usage: Usage | None = None) -> None:
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("gateway.request_id", ctx.request_id)
    span.set_attribute("gateway.attempts", ctx.attempts)
    span.set_attribute("gateway.retries", max(0, ctx.attempts - 1))
    span.set_attribute("gateway.overhead_ms", round(ctx.overhead_ms(), 3))
    if ctx.model:
        span.set_attribute("gen_ai.request.model", ctx.model)
    if ctx.backend:
        span.set_attribute("gateway.backend", ctx.backend)
    if ctx.upstream_request_id:
        span.set_attribute("gateway.upstream_request_id", ctx.upstream_request_id)
    if ctx.first_byte_ms is not None:
        span.set_attribute("gateway.time_to_first_token_ms", round(ctx.first_byte_ms, 3))
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("gen_ai.usage.total_tokens", usage.total_tokens)
    span.end()
