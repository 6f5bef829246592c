"""One structured (JSON) log line per request: ids, status, timing; never prompt or completion text."""

from __future__ import annotations

import json
import logging

from shared.context import RequestContext

logger = logging.getLogger("gateway.requests")


def log_request(ctx: RequestContext, *, method: str, route: str, status: int, streamed: bool) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "event": "request",
        "request_id": ctx.request_id,
        "method": method,
        "route": route,
        "status": status,
        "streamed": streamed,
        "model": ctx.model,
        "backend": ctx.backend,
        "upstream_status": ctx.upstream_status,
        "upstream_request_id": ctx.upstream_request_id,
        "attempts": ctx.attempts,
        "overhead_ms": round(ctx.overhead_ms(), 3),
        "upstream_ms": round(ctx.upstream_seconds * 1000.0, 3),
        "caller": ctx.caller,
    }
    if ctx.content:
        fields["content"] = ctx.content
    logger.info(json.dumps(fields, separators=(",", ":")))


CONTENT_LIMIT = 4096


def capture_content(ctx: RequestContext, name: str, body: bytes) -> None:
    """Keep (the start of) a body for the request's log line; only called when LOG_CONTENT=true."""
    if ctx.content is None:
        ctx.content = {}
    ctx.content[name] = body[:CONTENT_LIMIT].decode("utf-8", "replace")
