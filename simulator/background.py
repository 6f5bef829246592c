"""Background responses and stored input items: what `GET /responses/{id}` (polled or streamed),
`POST /responses/{id}/cancel` and `GET /responses/{id}/input_items` answer.

A background response (`background: true`) runs on its own clock, like the real service: its stream's
events are computed at creation with their pacing (`ttft_ms`, `token_delay_ms`), and the time each one
happens is fixed then, whoever is connected. So:

* polling shows `in_progress` (no output, usage null) until the last event's time, then the finished
  response (with the default zero delays: at once);
* `GET /responses/{id}?stream=true&starting_after=N` replays the events after sequence number N, each
  no earlier than its time (events already past come at once); `include_obfuscation=false` leaves out
  the `obfuscation` padding;
* cancelling a running one stops its clock: it reads `cancelled`, its usage counts the prompt and the
  deltas generated before the cancel, and a resumed stream ends after those deltas with an `error`
  event (code `response_cancelled`; the description has no cancelled stream event). Cancelling again
  answers the same; cancelling a finished response is 400, a response not made in the background 400.
  A stream already being sent when the cancel arrives runs to its end (its events were computed).
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from typing import Any

from .errors import invalid_request
from .ids import hex_id
from .pipeline import StreamOutcome, dumps
from .store import Background, StoredResponse

_OBFUSCATION = re.compile(rb',"obfuscation":"[^"]*"')
_DELTAS = (b"event: response.output_text.delta\n", b"event: response.reasoning_summary_text.delta\n")


def current(stored: StoredResponse, now: float | None = None) -> dict[str, Any]:
    """The response as a poll sees it now."""
    run = stored.background
    if run is None:
        return stored.payload
    now = time.monotonic() if now is None else now
    if run.cancelled_at is not None:
        return _cancelled(stored, run)
    if run.finished(now):
        return stored.payload
    return {**stored.payload, "status": "in_progress", "output": [], "usage": None, "completed_at": None,
            "incomplete_details": None}


def _emitted(run: Background, now: float) -> int:
    """How many of the run's events have happened by ``now``."""
    return bisect_right(run.offsets, run.elapsed(now))


def _cancelled(stored: StoredResponse, run: Background) -> dict[str, Any]:
    assert run.cancelled_at is not None
    generated = sum(1 for event in run.events[: _emitted(run, run.cancelled_at)] if event.startswith(_DELTAS))
    payload = stored.payload
    used = payload.get("usage")
    if isinstance(used, dict):
        used = {**used, "output_tokens": generated, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": used["input_tokens"] + generated}
    return {**payload, "status": "cancelled", "output": [], "usage": used, "completed_at": None,
            "incomplete_details": None}


def cancel(stored: StoredResponse, now: float | None = None) -> dict[str, Any]:
    """Stop a running background response; the response as it ended."""
    run = stored.background
    if run is None:
        raise invalid_request("Cannot cancel a response that was not created with background=true.",
                              param="response_id")
    now = time.monotonic() if now is None else now
    if run.cancelled_at is None:
        if run.finished(now):
            raise invalid_request(f"Cannot cancel a {stored.payload['status']} response.", param="response_id")
        run.cancelled_at = now
    return _cancelled(stored, run)


def resumed(stored: StoredResponse, after: int | None, obfuscated: bool, now: float | None = None) -> StreamOutcome:
    """The run's events after sequence number ``after``, each at its time."""
    run = stored.background
    if run is None:
        raise invalid_request("Only a response created with background=true can be streamed again.",
                              param="stream")
    start = 0 if after is None else after + 1
    if start > len(run.events):
        raise invalid_request(f"starting_after={after} is past the response's last event.", param="starting_after")
    now = time.monotonic() if now is None else now
    end = len(run.events) if run.cancelled_at is None else _emitted(run, run.cancelled_at)
    events: list[bytes] = []
    delays: list[float] = []
    clock = now
    for index in range(start, end):
        due = run.started + run.offsets[index]
        delays.append(max(0.0, due - clock))
        clock = max(clock, due)
        event = run.events[index]
        events.append(event if obfuscated else _OBFUSCATION.sub(b"", event))
    if run.cancelled_at is not None:
        error = {"type": "error", "sequence_number": max(start, end), "code": "response_cancelled",
                 "message": "The response was cancelled.", "param": None}
        events.append(b"event: error\ndata: " + dumps(error) + b"\n\n")
        delays.append(0.0)
    return StreamOutcome(events, delays)


# --- input items -------------------------------------------------------------------------------

_ID_PREFIXES = {"message": "msg_", "function_call_output": "fco_", "mcp_approval_response": "mcpr_"}


def input_resources(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's input items as `input_items` lists them: each with an id, messages with content parts."""
    resources = []
    for item in items:
        kind = item.get("type", "message")
        resource = {**item, "type": kind}
        if kind == "message":
            role = item.get("role", "user")
            content = item.get("content")
            if isinstance(content, str):
                part: dict[str, Any] = {"type": "input_text", "text": content}
                if role == "assistant":
                    part = {"type": "output_text", "text": content, "annotations": []}
                content = [part]
            resource.update(role=role, content=content, status=item.get("status", "completed"))
        elif kind == "function_call_output":
            resource.setdefault("status", "completed")
        resource["id"] = item.get("id") or hex_id(_ID_PREFIXES.get(kind, "item_"))
        resources.append(resource)
    return resources


def page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of ``items`` as asked by `limit` (1-100, default 20), `order` (default desc), `after`, `before`."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise invalid_request("Invalid 'limit': expected an integer from 1 to 100.", param="limit")
    limit = int(raw_limit)
    listed = items if order == "asc" else items[::-1]
    for cursor in ("after", "before"):
        if cursor in query:
            ids = [item["id"] for item in listed]
            if query[cursor] not in ids:
                raise invalid_request(f"No input item with id '{query[cursor]}'.", param=cursor)
            at = ids.index(query[cursor])
            listed = listed[at + 1:] if cursor == "after" else listed[:at]
    before = "before" in query and "after" not in query
    data = listed[-limit:] if before else listed[:limit]
    return {"object": "list", "data": data, "has_more": len(listed) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
