"""One request as the gateway sees it: its context on the way in, its reply on the way out, and the
log line it leaves behind.

``RequestContext`` is created by ``shared.http.serve`` for each call and carried through the
operation (ids, deadline, the caller, where the time went, token usage); ``Reply`` is what an
operation answers, HTTP-agnostic so that ``shared.gateway`` and ``shared.jobs`` never touch
Starlette; ``log_request`` writes the one structured line per request (never prompt or completion
text unless ``LOG_CONTENT=true``, via ``capture_content``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.deadline import Deadline

if TYPE_CHECKING:
    from shared.errors import GatewayError
    from shared.usage import Usage

logger = logging.getLogger("gateway.requests")

# How much of a body a request's log line keeps when LOG_CONTENT=true.
CONTENT_LIMIT = 4096


@dataclass(slots=True)
class RequestContext:
    """Carried through one request; the numbers end up in headers and the request's log line."""

    request_id: str
    deadline: Deadline
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0
    attempts: int = 0
    upstream_status: int | None = None
    upstream_request_id: str | None = None
    model: str | None = None
    backend: str | None = None
    first_byte_ms: float | None = None
    caller: str = "anonymous"
    # Only filled when LOG_CONTENT=true: prompt and completion text stay out of logs by default.
    content: dict[str, str] | None = None
    # The upstream's reported token usage, when limits or telemetry asked for it.
    usage: Usage | None = None

    @classmethod
    def new(cls, timeout_seconds: float) -> RequestContext:
        return cls(request_id=str(uuid.uuid4()), deadline=Deadline.after(timeout_seconds))

    def mark_first_byte(self) -> None:
        if self.first_byte_ms is None:
            self.first_byte_ms = (time.perf_counter() - self.started) * 1000.0

    def overhead_ms(self) -> float:
        """Our own processing time so far: wall time minus time spent waiting on the upstream."""
        return max(0.0, (time.perf_counter() - self.started - self.upstream_seconds) * 1000.0)


@dataclass(slots=True)
class Reply:
    """What to send back: a complete body, or an event stream relayed as it arrives."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: AsyncIterator[bytes] | None = None

    @classmethod
    def from_error(cls, error: GatewayError) -> Reply:
        """The error as OpenAI's JSON body, with its status and its headers (``retry-after``, ``Allow``)."""
        return cls(error.status, body=error.to_json(), headers={"content-type": "application/json", **error.headers})


def log_request(ctx: RequestContext, *, method: str, route: str, status: int, streamed: bool) -> None:
    """The request's one structured (JSON) log line: ids, status, timing, caller."""
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


def capture_content(ctx: RequestContext, name: str, body: bytes) -> None:
    """Keep (the start of) a body for the request's log line; only called when LOG_CONTENT=true."""
    if ctx.content is None:
        ctx.content = {}
    ctx.content[name] = body[:CONTENT_LIMIT].decode("utf-8", "replace")
