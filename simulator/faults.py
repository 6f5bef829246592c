"""Scripted faults: a queue of misbehaviours that the next matching requests suffer, in order.

Tests queue faults through `POST /_sim/faults` and then assert how the gateway coped (retries,
failover, timeouts, stream errors). Each fault matches a route key (see `route_key`) or "*", and
optionally one deployment; it is consumed `count` times, then removed (`count: 0` keeps it until
`DELETE /_sim/faults` or a reset, e.g. to model a backend that stays down).

``end_early`` sends the first ``after_chunks`` events of a stream and then ends it cleanly, without
its terminator (``[DONE]``, ``response.completed``): an upstream that stops short with no transport
error. A ``status`` fault's ``raw_body`` is sent verbatim instead of a JSON ``body`` (HTML, plain
text, nothing), with the ``content-type`` its ``headers`` name (default ``text/plain``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("status", "hang", "drop_mid_stream", "end_early", "slow_first_byte", "reset")

_PREFIXES = ("openai/v1/", "v1/")


def route_key(path: str) -> str:
    """Normalise a path or fault target: '/openai/v1/chat/completions' -> 'chat/completions'."""
    key = path.strip("/")
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


@dataclass
class Fault:
    """One queued fault. Fields not relevant to `kind` are ignored."""

    kind: str
    path: str = "*"
    model: str | None = None
    count: int = 1
    status: int = 500
    retry_after_ms: int | None = None
    seconds: float = 30.0
    after_chunks: int = 1
    ms: float = 0.0
    body: dict[str, Any] | None = None
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, route: str, model: str | None) -> bool:
        if self.path not in ("*", route):
            return False
        return self.model is None or self.model == model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(spec: dict[str, Any], name: str, default: float, minimum: float) -> float:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"fault field '{name}' must be a number >= {minimum}")
    return float(value)


def parse_fault(spec: object) -> Fault:
    """Validate one fault description from JSON."""
    if not isinstance(spec, dict):
        raise ValueError("each fault must be a JSON object")
    kind = spec.get("kind", "status")
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = spec.get("path", "*")
    model = spec.get("model")
    if not isinstance(path, str) or (model is not None and not isinstance(model, str)):
        raise ValueError("fault 'path' and 'model' must be strings")
    body = spec.get("body")
    if body is not None and not isinstance(body, dict):
        raise ValueError("fault 'body' must be a JSON object")
    raw_body = spec.get("raw_body")
    if raw_body is not None and not isinstance(raw_body, str):
        raise ValueError("fault 'raw_body' must be a string")
    headers = spec.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("fault 'headers' must map names to strings")
    retry = spec.get("retry_after_ms")
    status = int(_number(spec, "status", 500, 100))
    if status > 599:
        raise ValueError("fault 'status' must be an HTTP status code")
    return Fault(
        kind=kind,
        path="*" if path == "*" else route_key(path),
        model=model,
        count=int(_number(spec, "count", 1, 0)),
        status=status,
        retry_after_ms=None if retry is None else int(_number(spec, "retry_after_ms", 0, 0)),
        seconds=_number(spec, "seconds", 30.0, 0),
        after_chunks=int(_number(spec, "after_chunks", 1, 0)),
        ms=_number(spec, "ms", 0.0, 0),
        body=body,
        raw_body=raw_body,
        headers=headers,
    )


def parse_faults(payload: object) -> list[Fault]:
    """Accept a single fault, a list of faults, or {"faults": [...]}."""
    if isinstance(payload, dict) and "faults" in payload:
        payload = payload["faults"]
    items = payload if isinstance(payload, list) else [payload]
    return [parse_fault(item) for item in items]


class FaultQueue:
    """FIFO of pending faults; the first one matching a request is applied to it."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, faults: list[Fault]) -> None:
        self._pending.extend(faults)

    def take(self, route: str, model: str | None) -> Fault | None:
        """Consume one use of the first matching fault."""
        for i, fault in enumerate(self._pending):
            if fault.matches(route, model):
                if fault.count > 0:  # 0 means "until cleared"
                    fault.count -= 1
                    if fault.count == 0:
                        del self._pending[i]
                return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self._pending]

    def clear(self) -> None:
        self._pending.clear()
