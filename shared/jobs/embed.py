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
from dataclasses import dataclass, field

from shared import tokens
from shared.context import RequestContext
from shared.errors import GatewayError, UpstreamError
from shared.jobs.pacer import WINDOW_SECONDS, Pacer, Throttled
from shared.jobs.packing import Item
from shared.upstream import send

logger = logging.getLogger("gateway.jobs")

# Budget of one upstream request, the retry policy's short waits included: a 429 asking for longer
# than what is left of it ends the attempt, and the message is handed back for that long instead.
REQUEST_DEADLINE_SECONDS = 20.0
# With no rate-limit signal from a deployment yet, a batch over PROBE_ABOVE_TOKENS first sends a piece of
# PROBE_TOKENS, to learn the limit: one extra call for a big chunk, instead of risking a minute-long 429
# (Azure's smallest deployments have 1k TPM). Smaller batches are sent whole.
PROBE_ABOVE_TOKENS = 32_768
PROBE_TOKENS = 4096
# The pacer may hold a request this long to smooth a burst; beyond it the message goes back to the queue.
INLINE_WAIT_SECONDS = 2.0


class JobFailed(Exception):
    """A failure no retry can fix (e.g. the deployment does not exist); the job is marked failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Oversized(Exception):
    """A request the deployment's per-minute limit can never admit; it must be split, not retried."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request larger than the limit of {limit} tokens")
        self.limit = limit


@dataclass(slots=True)
class Outcome:
    """What happened to each item: a float32 vector (little-endian bytes) or an error on the item.

    ``refused`` holds the inputs the upstream refused one by one, ``{index: (code, message)}``
    (also set on the items themselves), so that a paused chunk can keep them with its vectors.
    ``output_tokens`` is the part of ``tokens`` the upstream generated (a batch's chat and
    Responses lines; none for embeddings).
    """

    vectors: dict[int, bytes]
    tokens: int
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)
    output_tokens: int = 0

    def absorb(self, other: Outcome) -> None:
        self.vectors.update(other.vectors)
        self.refused.update(other.refused)
        self.tokens += other.tokens
        self.output_tokens += other.output_tokens


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
        pacer.release(permit, exc.response.headers, charged=exc.response.status_code != 429)
        if exc.response.status_code == 429:
            limit = pacer.max_request_tokens()
            if limit is not None and cost > limit:
                # Not "wait": this request is larger than the deployment's minute and never fits (the
                # 429 asks for a whole window). Learned from the 429's own headers: split it now.
                raise Oversized(limit) from None
            raise Throttled(pacer.throttled(exc.response.headers)) from None
        raise
    except GatewayError as exc:
        pacer.release(permit, None, charged=exc.status != 429)
        if exc.status == 429:  # every backend cooling down after a 429: the wait it names, for everyone
            raise Throttled(pacer.throttled(exc.headers)) from None
        raise
    except BaseException:
        pacer.release(permit, None)
        raise
    pacer.release(permit, response.headers)
    return _decode(response.content, len(items))


async def embed(items: list[Item], model: str, dimensions: int | None, pacer: Pacer,
                outcome: Outcome | None = None) -> Outcome:
    """Embed ``items`` (all with text); items the upstream refuses one by one get an error set.

    Results accumulate in ``outcome`` (the caller's, when given) as each request returns, so when
    something stops it part-way (a throttle longer than a function should sleep, an outage), the
    caller still holds everything already paid for and can keep it.

    A refused batch is halved until the refused inputs stand alone; a refusal about anything but
    the inputs (``dimensions``, ``model``), or more refusals than isolating a few bad inputs takes,
    fails the job instead of costing thousands of requests.
    """
    outcome = Outcome({}, 0) if outcome is None else outcome
    refusals_left = 16 * max(1, len(items)).bit_length()
    pending = [items]
    while pending:
        batch = pending.pop()
        pieces = _fit(batch, pacer)
        if len(pieces) > 1:
            pending.extend(reversed(pieces))
            continue
        try:
            vectors, used = await _send(batch, model, dimensions, pacer)
        except Oversized as exc:
            if len(batch) == 1:  # a single input over the whole limit: wait for an empty window instead
                raise Throttled(WINDOW_SECONDS) from None
            parts = _split_by_estimate(batch, max(1, exc.limit // 2))
            if len(parts) == 1:
                parts = [batch[:len(batch) // 2], batch[len(batch) // 2:]]
            pending.extend(reversed(parts))
            continue
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
            outcome.refused[item.index] = (item.error_code, item.error_message)
            continue
        outcome.tokens += used
        for item, vector in zip(batch, vectors, strict=True):
            outcome.vectors[item.index] = vector
    return outcome


def _fit(batch: list[Item], pacer: Pacer) -> list[list[Item]]:
    """``batch`` cut to what the deployment can take, as the pacer knows it right now.

    Over the deployment's per-minute limit, a request can never pass: cut to half of it (two pieces
    fit a window). Larger than the room jobs have in the window right now (and that room at least an
    eighth of a window), cut to the room: sent whole it would wait for a whole chunk's room while the
    rest of the window stays idle, which held ~60-token texts to 0.54-0.67 of the limit. With no
    signal from the deployment yet, a batch over :data:`PROBE_ABOVE_TOKENS`
    sends a first piece of :data:`PROBE_TOKENS` only, whose answer states the limit, instead of
    risking a request the deployment refuses for a whole minute.
    """
    cost = sum(tokens.estimate(i.text or "") for i in batch)
    limit = pacer.max_request_tokens()
    if limit is not None and cost > limit and len(batch) > 1:
        return _split_by_estimate(batch, max(1, limit // 2))
    room = pacer.room_tokens()
    if limit is not None and room is not None and len(batch) > 1 and cost > room >= limit // 8:
        first = _split_by_estimate(batch, room)[0]
        if len(first) < len(batch):
            return [first, batch[len(first):]]
    if limit is None and not pacer.has_signal() and cost > PROBE_ABOVE_TOKENS and len(batch) > 1:
        first = _split_by_estimate(batch, PROBE_TOKENS)[0]
        return [first, batch[len(first):]]
    return [batch]


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
