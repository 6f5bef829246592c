"""One batch line sent as it is (chat, Responses, an embeddings line that cannot be packed).

The same upstream path as a live call: ``shared.upstream.send`` (one retry policy, failover), the
deployment's pacer (``get_pacer``: waits a moment or raises ``Throttled`` so the chunk goes back to
the queue; it keeps the interactive reserve), and the owner's per-caller budget
(``shared.jobs.charge``), reserved with the gateway's estimate (prompt bytes / 4 plus the line's
output cap, else ``CALLER_OUTPUT_TOKEN_ALLOWANCE``, times ``n``) and settled with the usage the
upstream reported.

What a line's answer becomes:

* 2xx: an output-file line with the upstream's body; a Responses answer stored upstream (``store``
  not false) is recorded as the batch owner's (``shared.ownership``), so the owner can GET it (if
  that record cannot be written, the line counts as not done and runs again: an answer its owner
  could never read is not delivered);
* 4xx other than 408/429: an error-file line with the upstream's status and its OpenAI-shaped body;
  401/403, or 404 ``DeploymentNotFound``, fail the whole batch (``JobFailed``): no line could pass;
* 429, or 408/5xx/unreachable after ``send``'s own retries: raised, and the chunk is handed back
  with its finished lines kept.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from shared import usage
from shared.batch import output
from shared.batch.planned import PlannedLine
from shared.config import get_settings
from shared.context import RequestContext
from shared.embeddings_format import asked_encoding, in_asked_encoding
from shared.errors import GatewayError, UpstreamError
from shared.errors.upstream import openai_error_body
from shared.jobs import charge
from shared.jobs.embed import INLINE_WAIT_SECONDS, JobFailed
from shared.jobs.pacer import Pacer, Throttled
from shared.lazy import process_wide
from shared.ownership import get_owners
from shared.upstream import send
from shared.upstream_http import UpstreamResponse

# Budget of one line's request, retries included: room for a long completion, well inside the
# Functions timeout for the few waves of a chunk.
REQUEST_DEADLINE_SECONDS = 120.0
# Lines in flight at once per deployment in one instance (all chunks of this process together).
LINES_AT_ONCE = 8
_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@process_wide
def line_slots(deployment: str) -> asyncio.Semaphore:
    """The bound on lines in flight to one deployment from this process."""
    return asyncio.Semaphore(LINES_AT_ONCE)


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def estimate(raw: bytes, body: dict[str, Any], path: str) -> int:
    """Tokens to reserve and pace for: the prompt from the body's size, the output from its cap."""
    prompt = -(-len(raw) // 4)
    if path == "/embeddings":
        return prompt
    choices = _positive(body.get("n")) or 1
    caps = [cap for name in _OUTPUT_CAPS if (cap := _positive(body.get(name))) is not None]
    return prompt + (max(caps) if caps else get_settings().caller_output_token_allowance) * choices


def _compact(body: bytes) -> str:
    """The body as one JSON line (an upstream may pretty-print; a JSONL record must not break)."""
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return json.dumps({"error": {"message": body[:500].decode("utf-8", "replace"), "type": "api_error",
                                     "param": None, "code": None}})


def _request_id(response: UpstreamResponse | None, ctx: RequestContext) -> str:
    headers = response.headers if response is not None else {}
    return headers.get("apim-request-id") or headers.get("x-request-id") or ctx.request_id


def _final(status: int, content: bytes) -> JobFailed | None:
    """A refusal that no line of this batch could escape: the deployment or the gateway's identity."""
    try:
        code = (json.loads(content).get("error") or {}).get("code")
    except (ValueError, AttributeError):
        code = None
    if status in (401, 403) or (status == 404 and code == "DeploymentNotFound"):
        return JobFailed(str(code or f"upstream_{status}"),
                         f"The upstream refused the batch's requests ({status}): "
                         f"{content[:300].decode('utf-8', 'replace')}")
    return None


async def send_line(batch_id: str, planned: PlannedLine, path: str, deployment: str, pacer: Pacer,
                    payer: str, owner: str | None) -> tuple[bytes, int, int]:
    """(the line's tagged record, tokens it used, of which generated); raises to hand the chunk back or fail the batch.

    Generated tokens are the upstream's ``completion_tokens`` (chat) or ``output_tokens`` (Responses);
    an answer that reports no usage counts its estimate as input.
    """
    assert planned.body is not None
    raw = planned.body.encode("utf-8")
    body = json.loads(raw)
    cost = estimate(raw, body, path)
    hold = charge.reserve(payer, cost)
    try:
        permit = await pacer.acquire(cost, INLINE_WAIT_SECONDS)
    except BaseException:
        charge.settle(hold, 0)
        raise
    ctx = RequestContext.new(REQUEST_DEADLINE_SECONDS)
    ctx.model = deployment
    try:
        response = await send(ctx, "POST", path, content=raw)
    except UpstreamError as exc:
        status = exc.response.status_code
        pacer.release(permit, exc.response.headers, charged=status != 429)
        charge.settle(hold, 0)  # refused: nothing was generated
        if status == 429:
            raise Throttled(pacer.throttled(exc.response.headers)) from None
        if (final := _final(status, exc.response.content)) is not None:
            raise final from None
        if status == 408 or status >= 500:
            raise
        record = output.answered(batch_id, planned, status, _request_id(exc.response, ctx),
                                 _compact(openai_error_body(status, exc.response.content)))
        return record, 0, 0
    except GatewayError as exc:
        pacer.release(permit, None, charged=exc.status != 429)
        charge.settle(hold, 0 if exc.status == 429 else cost)  # timed out: it may have generated
        if exc.status == 429:
            raise Throttled(pacer.throttled(exc.headers)) from None
        raise
    except BaseException:
        pacer.release(permit, None)
        charge.settle(hold, cost)
        raise
    pacer.release(permit, response.headers)
    reported = usage.from_body(response.content)
    used = reported.total_tokens if reported is not None else cost
    generated = reported.completion_tokens if reported is not None else 0
    charge.settle(hold, used)
    if path == "/responses" and body.get("store") is not False and owner:
        stored = json.loads(response.content).get("id")
        if isinstance(stored, str):
            await get_owners().record(stored, owner)
    content = response.content
    if path == "/embeddings":  # in the encoding the line asked for, as the synchronous route answers
        content = in_asked_encoding(content, asked_encoding(body.get("encoding_format")))
    return output.answered(batch_id, planned, response.status_code, _request_id(response, ctx),
                           _compact(content)), used, generated
