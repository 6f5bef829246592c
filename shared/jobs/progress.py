"""Work a chunk already paid for survives a pause: vectors received before a throttle are kept.

A chunk larger than what the deployment can take in a minute is sent in pieces; when the pacer
then wants a longer wait than a function should sleep, the chunk goes back to the queue. What the
earlier pieces returned is written to ``jobs/{id}/chunks/{n}.partial.jsonl`` first, and the next
delivery sends only the rest: every upstream call moves the job forward, whatever the quota.

One line per input already settled, ``{"index", "vector": base64 float32}`` or ``{"index",
"error": {"code", "message"}}``, after a first line ``{"tokens": n}`` (what those calls cost; with
``"output_tokens"`` when some of it was generated text).
The blob is rewritten whole each time (it only grows), so a redelivery that re-reads it sees a
consistent state; it is deleted once the chunk is recorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import TYPE_CHECKING

from shared.jobs import blobs, layout
from shared.jobs.embed import Outcome
from shared.jobs.runtime import Runtime

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient


def _blob(rt: Runtime, job_id: str, chunk: int) -> BlobClient:
    return blobs.blob_client(rt.storage, rt.container, layout.partial_blob(job_id, chunk))


async def load(rt: Runtime, job_id: str, chunk: int) -> Outcome:
    """What earlier deliveries of this chunk kept (empty when none)."""
    kept = Outcome({}, 0)
    try:
        lines = [json.loads(line) async for line in blobs.iter_lines(_blob(rt, job_id, chunk))]
    except blobs.BlobMissing:
        return kept
    for line in lines:
        if "tokens" in line:
            kept.tokens = int(line["tokens"])
            kept.output_tokens = int(line.get("output_tokens", 0))
        elif "vector" in line:
            kept.vectors[int(line["index"])] = base64.b64decode(line["vector"])
        elif "error" in line:
            kept.refused[int(line["index"])] = (str(line["error"]["code"]), str(line["error"]["message"]))
    return kept


async def save(rt: Runtime, job_id: str, chunk: int, kept: Outcome) -> None:
    cost = {"tokens": kept.tokens, **({"output_tokens": kept.output_tokens} if kept.output_tokens else {})}
    lines = [json.dumps(cost)]
    lines += [json.dumps({"index": i, "vector": base64.b64encode(v).decode("ascii")})
              for i, v in sorted(kept.vectors.items())]
    lines += [json.dumps({"index": i, "error": {"code": c, "message": m}}, ensure_ascii=False)
              for i, (c, m) in sorted(kept.refused.items())]
    await blobs.upload_lines(_blob(rt, job_id, chunk), lines)


async def discard(rt: Runtime, job_id: str, chunk: int) -> None:
    """Best effort: a leftover partial blob is harmless (the chunk row says the chunk is done)."""
    from azure.core.exceptions import ResourceNotFoundError

    with contextlib.suppress(ResourceNotFoundError):
        await _blob(rt, job_id, chunk).delete_blob()
