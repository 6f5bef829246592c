"""What the upstream saw: per-route counters and a bounded log of recent requests.

Gateway tests use this to assert attempt counts, the spacing between retries, which credential
kind was forwarded, which headers arrived, and whether a cancelled client stopped generation.
Times are `time.monotonic()` (CLOCK_MONOTONIC on Linux, so comparable with a test process on the
same host) plus wall-clock `time.time()` for humans.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Never echo credentials back through the unauthenticated control API.
_SECRET_HEADERS = frozenset({b"authorization", b"api-key", b"cookie", b"ocp-apim-subscription-key"})


def fingerprint(secret: str) -> str:
    """Short stable digest of a credential, so tests can tell keys apart without seeing them."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(slots=True)
class RequestRecord:
    """One received API request and what the simulator did with it."""

    seq: int
    request_id: str
    method: str
    path: str
    route: str
    received_at: float
    received_at_wall: float
    headers: dict[str, str]
    body_size: int = 0
    # top-level JSON keys, so gateway tests can check unknown fields were forwarded
    body_keys: list[str] = field(default_factory=list)
    auth: str | None = None  # "bearer", "api-key" or None
    auth_fingerprint: str | None = None
    model: str | None = None
    stream: bool = False
    fault: str | None = None
    # the raw query string, so gateway tests can check what a relayed query looked like
    query: str = ""
    status: int | None = None
    first_byte_at: float | None = None
    finished_at: float | None = None
    chunks_sent: int = 0
    cancelled: bool = False
    aborted: bool = False

    def to_dict(self) -> dict[str, Any]:
        done = self.finished_at
        return {
            "seq": self.seq,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "route": self.route,
            "model": self.model,
            "stream": self.stream,
            "received_at": self.received_at,
            "received_at_wall": self.received_at_wall,
            "first_byte_at": self.first_byte_at,
            "finished_at": done,
            "duration_ms": None if done is None else round((done - self.received_at) * 1000, 3),
            "status": self.status,
            "auth": self.auth,
            "auth_fingerprint": self.auth_fingerprint,
            "headers": self.headers,
            "body_size": self.body_size,
            "body_keys": self.body_keys,
            "fault": self.fault,
            "chunks_sent": self.chunks_sent,
            "cancelled": self.cancelled,
            "aborted": self.aborted,
        }


@dataclass
class Stats:
    """Counters plus a ring buffer of `RequestRecord`s."""

    recent_limit: int = 1000
    counts: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    disconnects: int = 0
    total: int = 0
    in_flight: int = 0
    recent: deque[RequestRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=max(1, self.recent_limit))

    def resize(self, limit: int) -> None:
        self.recent_limit = limit
        self.recent = deque(self.recent, maxlen=max(1, limit))

    def begin(
        self, method: str, path: str, route: str, raw_headers: list[tuple[bytes, bytes]], request_id: str
    ) -> RequestRecord:
        """Log a request on arrival (before auth, so rejected attempts are counted too)."""
        self.total += 1
        self.in_flight += 1
        self.counts[route] = self.counts.get(route, 0) + 1
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers if k not in _SECRET_HEADERS}
        record = RequestRecord(
            seq=self.total,
            request_id=request_id,
            method=method,
            path=path,
            route=route,
            received_at=time.monotonic(),
            received_at_wall=time.time(),
            headers=headers,
        )
        self.recent.append(record)
        return record

    def sent_status(self, record: RequestRecord, status: int) -> None:
        record.status = status
        record.first_byte_at = time.monotonic()
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def finish(self, record: RequestRecord, *, cancelled: bool = False, aborted: bool = False) -> None:
        """Close a record exactly once (normal end, client disconnect, or deliberate abort)."""
        if record.finished_at is not None:
            return
        record.finished_at = time.monotonic()
        self.in_flight = max(0, self.in_flight - 1)  # a reset may have zeroed it meanwhile
        if cancelled:
            record.cancelled = True
            self.disconnects += 1
        record.aborted = aborted

    def snapshot(self, route: str | None = None, limit: int | None = None) -> dict[str, Any]:
        records = [r for r in self.recent if route is None or r.route == route]
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        return {
            "total": self.total,
            "counts": dict(self.counts),
            "statuses": dict(self.statuses),
            "disconnects": self.disconnects,
            "in_flight": self.in_flight,
            "recent": [r.to_dict() for r in records],
        }

    def reset(self) -> None:
        self.counts.clear()
        self.statuses.clear()
        self.disconnects = 0
        self.total = 0
        self.in_flight = 0
        self.recent.clear()
