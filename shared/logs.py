"""One structured (JSON) log line per request: ids, status, timing; never prompt or completion text."""

from __future__ import annotations

import json
import logging

from shared.context import RequestContext

logger = logging.getLogger("gateway.requests")


def log_request(ctx: RequestContext, *, method: str, route: str, status: int, streamed: bool) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(json.dumps({
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
    }, separators=(",", ":")))
