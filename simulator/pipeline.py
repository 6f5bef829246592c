"""The common path of every API request, so handlers only deal with their own payloads.

Order, chosen so that tests can reason about what is consumed when:

1. record the request in stats (even if it is then rejected);
2. authenticate (401) - a fault is not consumed by an unauthenticated request;
3. parse the JSON body (400) and resolve the deployment in `model` (400/404);
4. take the first matching scripted fault: `status`, `hang` and `reset` end the request here,
   `slow_first_byte`, `drop_mid_stream` and `end_early` shape the reply the handler produces;
5. run the handler, which validates, charges the rate limiter via `Call.admit` (429) and
   produces a JSON body or a paced SSE stream;
6. send it through `wire.Reply` with Azure-like headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .errors import (
    ApiError,
    azure_error,
    deployment_not_found,
    fault_error,
    invalid_request,
    rate_limited,
    unauthorized,
)
from .faults import Fault
from .ids import request_id
from .state import Simulator
from .stats import RequestRecord, fingerprint
from .wire import Reply

logger = logging.getLogger("simulator")

JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream; charset=utf-8"
REGION = b"Simulated Local"


@dataclass(slots=True)
class JsonOutcome:
    """A JSON reply; `raw` skips serialisation when a handler already has the bytes."""

    payload: Any = None
    raw: bytes | None = None
    status: int = 200
    delay_s: float = 0.0


@dataclass(slots=True)
class StreamOutcome:
    """SSE events and the delay before each one."""

    events: list[bytes]
    delays: list[float]


Outcome = JsonOutcome | StreamOutcome


@dataclass(slots=True)
class Call:
    """What a handler gets: the parsed request and a way to charge the rate limiter."""

    sim: Simulator
    request: Request
    record: RequestRecord
    body: dict[str, Any]
    model: str | None
    operation: str

    def admit(self, cost: int) -> None:
        """Charge `cost` tokens and one request, or raise the Azure-style 429."""
        verdict = self.sim.limiter.try_acquire(cost)
        if not verdict.allowed:
            raise rate_limited(self.operation, verdict.reason, verdict.retry_after_ms)


Handler = Callable[[Call], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One API route: its stats/fault key, Azure operation name and handler."""

    route: str  # e.g. "chat/completions", "responses/{id}"
    name: str  # e.g. "ChatCompletions_Create", used in 429 messages
    handler: Handler
    family: str = ""  # "chat" or "embeddings": which deployments may serve it
    has_body: bool = True  # POST with a JSON body naming a deployment


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # reused: json.dumps(**kwargs) builds one per call


def dumps(payload: Any) -> bytes:
    return _ENCODER.encode(payload).encode()


def base_headers(sim: Simulator, rid: str, content_type: bytes) -> list[tuple[bytes, bytes]]:
    """Headers Azure puts on every response (request ids, region, rate-limit state)."""
    headers = sim.limiter.headers()
    headers += (
        (b"content-type", content_type),
        (b"x-request-id", rid.encode()),
        (b"apim-request-id", request_id().encode()),
        (b"x-ms-region", REGION),
    )
    return headers


def authenticate(raw_headers: list[tuple[bytes, bytes]], record: RequestRecord, expected: str | None) -> None:
    """Accept an `api-key` header or a Bearer token; with `expected` set it must match."""
    api_key = bearer = ""
    for name, value in raw_headers:  # raw scan: cheaper than building a Headers object
        if name == b"api-key":
            api_key = value.decode("latin-1")
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
    if api_key:
        key = api_key
        record.auth = "api-key"
    elif bearer:
        key = bearer
        record.auth = "bearer"
    else:
        raise unauthorized()
    record.auth_fingerprint = fingerprint(key)
    if expected is not None and key != expected:
        raise unauthorized()


def is_embedding_model(name: str) -> bool:
    return "embedding" in name


def resolve_model(sim: Simulator, body: dict[str, Any], family: str) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("you must provide a model parameter", param="model", code="missing_required_parameter")
    if model not in sim.models:
        raise deployment_not_found()
    if family and is_embedding_model(model) != (family == "embeddings"):
        operation = "embeddings" if family == "embeddings" else "chatCompletion"
        raise azure_error(
            400,
            "OperationNotSupported",
            f"The {operation} operation does not work with the specified model, {model}. "
            "Please choose different model and try again.",
        )
    return model


async def read_json(request: Request, record: RequestRecord) -> dict[str, Any]:
    # Straight from ASGI `receive`: Starlette's body() machinery costs more than the parse.
    receive = request.receive
    message = await receive()
    raw = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [raw]
        while message.get("more_body", False):
            message = await receive()
            chunks.append(message.get("body", b""))
        raw = b"".join(chunks)
    record.body_size = len(raw)
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid_request("We could not parse the JSON body of your request: it is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    return body


def error_reply(sim: Simulator, record: RequestRecord, rid: str, err: ApiError, pre_delay_s: float) -> Reply:
    headers = base_headers(sim, rid, JSON_TYPE)
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items())
    return Reply(err.status, headers, dumps(err.body), pre_delay_s=pre_delay_s, record=record, stats=sim.stats)


def early_fault_reply(sim: Simulator, record: RequestRecord, rid: str, fault: Fault) -> Reply | None:
    """Replies for faults that replace the handler entirely; None for those that shape it."""
    if fault.kind == "status" and fault.raw_body is not None:
        extra = {k.lower(): v for k, v in fault.headers.items()}
        content_type = extra.pop("content-type", "text/plain").encode("latin-1")
        headers = base_headers(sim, rid, content_type)
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
        return Reply(fault.status, headers, fault.raw_body.encode(), record=record, stats=sim.stats)
    if fault.kind == "status":
        err = fault_error(fault.status, fault.retry_after_ms)
        if fault.body is not None:
            err.body = fault.body
        err.headers.update(fault.headers)
        return error_reply(sim, record, rid, err, 0.0)
    if fault.kind in ("hang", "reset"):
        return Reply(0, [], action=fault.kind, hang_s=fault.seconds, record=record, stats=sim.stats)
    return None


def endpoint(sim: Simulator, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    """Wrap `op.handler` in the common pipeline described in the module docstring."""

    async def handle(request: Request) -> Response:
        rid = request_id()
        scope = request.scope
        record = sim.stats.begin(scope["method"], scope["path"], op.route, scope["headers"], rid)
        pre_delay_s = 0.0
        drop_after: int | None = None
        end_after: int | None = None
        try:
            authenticate(scope["headers"], record, sim.config.api_key)
            body: dict[str, Any] = {}
            model: str | None = None
            if op.has_body:
                body = await read_json(request, record)
                model = resolve_model(sim, body, op.family)
                record.model = model
                record.stream = body.get("stream") is True
                record.body_keys = sorted(body)
            fault = sim.faults.take(op.route, model) if sim.faults else None
            if fault is not None:
                record.fault = fault.kind
                early = early_fault_reply(sim, record, rid, fault)
                if early is not None:
                    return early
                if fault.kind == "slow_first_byte":
                    pre_delay_s = fault.ms / 1000
                elif fault.kind == "end_early":
                    end_after = fault.after_chunks
                else:
                    drop_after = fault.after_chunks
            outcome = await op.handler(Call(sim, request, record, body, model, op.name))
        except ApiError as err:
            return error_reply(sim, record, rid, err, pre_delay_s)
        except Exception:  # a simulator bug must still answer (and close its record)
            logger.exception("simulator handler failed")
            return error_reply(sim, record, rid, fault_error(500, None), 0.0)
        if isinstance(outcome, StreamOutcome):
            if end_after is not None:
                outcome = StreamOutcome(outcome.events[:end_after], outcome.delays[:end_after])
            headers = base_headers(sim, rid, SSE_TYPE)
            headers.append((b"cache-control", b"no-cache"))
            return Reply(
                200,
                headers,
                events=outcome.events,
                delays=outcome.delays,
                pre_delay_s=pre_delay_s,
                drop_after=drop_after,
                record=record,
                stats=sim.stats,
            )
        body_bytes = outcome.raw if outcome.raw is not None else dumps(outcome.payload)
        return Reply(
            outcome.status,
            base_headers(sim, rid, JSON_TYPE),
            body_bytes,
            pre_delay_s=pre_delay_s + outcome.delay_s,
            drop_after=drop_after,
            record=record,
            stats=sim.stats,
        )

    return handle
