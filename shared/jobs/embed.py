"""Embed a list of inputs through the gateway's one upstream client and retry policy.

One call here is one logical upstream request (``shared.upstream.send`` retries small waits itself).
Around it: the process-wide pacer (wait a little, or raise :class:`Throttled` to hand the message
back), ``encoding_format: base64`` (a third of the bytes of a float list and no float parsing), and
splitting when the upstream refuses a batch as too large, so that one bad input fails alone.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared import tokens
from shared.context import RequestContext
from shared.jobs.pacer import Pacer, Throttled
from shared.jobs.packing import Item
from shared.upstream import UpstreamError, send

logger = logging.getLogger("gateway.jobs")

# Budget of one upstream request, the retry policy's short waits included: a 429 asking for longer
# than what is left of it ends the attempt, and the message is handed back for that long instead.
REQUEST_DEADLINE_SECONDS = 20.0
# The pacer may hold a request this long to smooth a burst; beyond it the message goes back to the queue.
INLINE_WAIT_SECONDS = 2.0


class JobFailed(Exception):
    """A failure no retry can fix (e.g. the deployment does not exist); the job is marked failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Outcome:
    """What happened to each item: a float32 vector (little-endian bytes) or an error on the item."""

    vectors: dict[int, bytes]
    tokens: int


def request_body(texts: Sequence[str], model: str, dimensions: int | None) -> bytes:
    body: dict[str, object] = {"model": model, "input": list(texts), "encoding_format": "base64"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode(response_body: bytes, count: int) -> tuple[list[bytes], int]:
    payload = json.loads(response_body)
    data = sorted(payload["data"], key=lambda d: d["index"])
    if len(data) != count:
        raise ValueError(f"upstream returned {len(data)} embeddings for {count} inputs")
    vectors: list[bytes] = []
    for entry in data:
        value = entry["embedding"]
        if isinstance(value, str):
            vectors.append(base64.b64decode(value))
        else:  # an upstream that ignored encoding_format
            import array

            vectors.append(array.array("f", value).tobytes())
    usage = payload.get("usage") or {}
    return vectors, int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)


def _error(response_body: bytes) -> tuple[str | None, str | None, str]:
    """(code, param, message) of an OpenAI-shaped error body."""
    try:
        error = json.loads(response_body).get("error") or {}
        return error.get("code"), error.get("param"), str(error.get("message") or "")
    except (ValueError, AttributeError):
        return None, None, response_body[:500].decode("utf-8", "replace")


async def _send(items: Sequence[Item], model: str, dimensions: int | None, pacer: Pacer) -> tuple[list[bytes], int]:
    texts = [item.text or "" for item in items]
    cost = sum(tokens.estimate(t) for t in texts)
    permit = await pacer.acquire(cost, INLINE_WAIT_SECONDS)
    ctx = RequestContext.new(REQUEST_DEADLINE_SECONDS)
    ctx.model = model
    try:
        response = await send(ctx, "POST", "/embeddings", content=request_body(texts, model, dimensions))
    except UpstreamError as exc:
        pacer.release(permit, exc.response.headers)
        if exc.response.status_code == 429:
            raise Throttled(pacer.throttled(exc.response.headers)) from None
        raise
    except BaseException:
        pacer.release(permit, None)
        raise
    pacer.release(permit, response.headers)
    return _decode(response.content, len(items))


async def embed(items: list[Item], model: str, dimensions: int | None, pacer: Pacer) -> Outcome:
    """Embed ``items`` (all with text); items the upstream refuses one by one get an error set.

    A refused batch is halved until the refused inputs stand alone; a refusal about anything but
    the inputs (``dimensions``, ``model``), or more refusals than isolating a few bad inputs takes,
    fails the job instead of costing thousands of requests.
    """
    outcome = Outcome({}, 0)
    limit = pacer.max_request_tokens()
    batches = [items]
    if limit is not None and sum(tokens.estimate(i.text or "") for i in items) > limit:
        # The deployment's whole per-minute budget is smaller than this request: it would never pass.
        batches = _split_by_estimate(items, max(1, limit // 2))
    refusals_left = 16 * max(1, len(items)).bit_length()
    pending = list(reversed(batches))
    while pending:
        batch = pending.pop()
        try:
            vectors, used = await _send(batch, model, dimensions, pacer)
        except UpstreamError as exc:
            status = exc.response.status_code
            code, param, message = _error(exc.response.content)
            if status in (401, 403, 404) or (status in (400, 413) and param not in (None, "input")):
                raise JobFailed(code or f"upstream_{status}",
                                f"The upstream refused the job's requests ({status}): {message}") from None
            if status not in (400, 413):
                raise
            refusals_left -= 1
            if refusals_left < 0:
                raise JobFailed(code or "upstream_refused",
                                f"The upstream refused too many of the job's requests ({status}): {message}") from None
            if len(batch) > 1:
                middle = len(batch) // 2
                pending.extend((batch[middle:], batch[:middle]))
                continue
            item = batch[0]
            item.text = None
            item.error_code = code or "invalid_input"
            item.error_message = message or f"The upstream refused this input ({status})."
            continue
        outcome.tokens += used
        for item, vector in zip(batch, vectors, strict=True):
            outcome.vectors[item.index] = vector
    return outcome


def _split_by_estimate(items: list[Item], budget: int) -> list[list[Item]]:
    batches: list[list[Item]] = [[]]
    used = 0
    for item in items:
        cost = tokens.estimate(item.text or "")
        if batches[-1] and used + cost > budget:
            batches.append([])
            used = 0
        batches[-1].append(item)
        used += cost
    return batches
