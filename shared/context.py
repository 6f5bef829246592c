"""Per-request bookkeeping: identity, deadline, and where the time went."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.deadline import Deadline

if TYPE_CHECKING:
    from shared.usage import Usage


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
