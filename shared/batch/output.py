"""A batch's output and error lines, in OpenAI's format, and how a chunk's lines become blob blocks.

Output file line: ``{"id": "batch_req_...", "custom_id", "response": {"status_code": 200,
"request_id", "body"}, "error": null}``. A line the upstream refused goes to the error file with
its status and OpenAI-shaped error body under ``response``; a line never run (the batch was
cancelled, expired or failed) goes there with ``"response": null`` and an ``error`` naming why.

A finished line is kept as bytes tagged with the file it belongs to (:func:`tag`), so a chunk
handed back part-way (``shared.jobs.progress``) keeps each finished line's exact record, and the
next delivery, or the close, writes that record unchanged: exactly once, never re-sent.

Each chunk stages its output lines and its error lines as blocks of :data:`PART_LINES` lines under
ids that follow from the chunk number alone (``layout.block_id``), into two blobs; the chunk row's
counts (``embedded`` = output lines, ``failed`` = error lines) say how many blocks each got.
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import sys
from collections.abc import Callable

from shared.batch.planned import Encoding, PlannedLine
from shared.errors.upstream import error_type

REQUEST_ID_PREFIX = "batch_req_"
PART_LINES = 256
OUTPUT, ERROR = b"o", b"e"
_FLOAT = "{:.9g}".format


def request_id(batch_id: str, line: int) -> str:
    """The ``id`` of a batch line's record: the same for the same batch and line, on any instance."""
    return REQUEST_ID_PREFIX + hashlib.sha256(f"{batch_id}/{line}".encode()).hexdigest()[:32]


def tag(kind: bytes, record: str) -> bytes:
    """A finished line's record, marked for the output (:data:`OUTPUT`) or error (:data:`ERROR`) file."""
    return kind + record.encode("utf-8")


def untag(kept: bytes) -> tuple[bytes, bytes]:
    return kept[:1], kept[1:]


def answered(batch_id: str, planned: PlannedLine, status: int, upstream_request_id: str, body: str) -> bytes:
    """A line the upstream answered: to the output file when it succeeded, else to the error file."""
    record = (f'{{"id":"{request_id(batch_id, planned.line)}","custom_id":{json.dumps(planned.custom_id)},'
              f'"response":{{"status_code":{status},"request_id":{json.dumps(upstream_request_id)},'
              f'"body":{body}}},"error":null}}')
    return tag(OUTPUT if status < 400 else ERROR, record)


def refused(batch_id: str, planned: PlannedLine, status: int, upstream_request_id: str, code: str | None,
            message: str, param: str | None = "input") -> bytes:
    """An error-file line for a request refused with ``status`` (OpenAI's error body)."""
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    return answered(batch_id, planned, status, upstream_request_id, json.dumps(body, ensure_ascii=False))


def not_run(batch_id: str, planned: PlannedLine, code: str, message: str) -> bytes:
    """An error-file line for a line that never ran (``batch_cancelled``, ``batch_expired``, ``batch_failed``)."""
    error = json.dumps({"code": code, "message": message}, ensure_ascii=False)
    record = (f'{{"id":"{request_id(batch_id, planned.line)}","custom_id":{json.dumps(planned.custom_id)},'
              f'"response":null,"error":{error}}}')
    return tag(ERROR, record)


def _vector(vector: bytes, encoding: Encoding) -> str:
    if encoding == "base64":
        return '"' + base64.b64encode(vector).decode("ascii") + '"'
    values = array.array("f", vector)
    if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
        values.byteswap()
    return "[" + ",".join(map(_FLOAT, values)) + "]"


def embeddings_body(vectors: list[bytes], encoding: Encoding, model: str, usage: int) -> str:
    """The body ``POST /v1/embeddings`` answers for one line, with that line's own encoding.

    Floats carry 9 significant digits: exactly the float32 the upstream computed, and far shorter
    than Python's float64 repr.
    """
    data = ",".join(f'{{"object":"embedding","index":{i},"embedding":{_vector(v, encoding)}}}'
                    for i, v in enumerate(vectors))
    return (f'{{"object":"list","data":[{data}],"model":{json.dumps(model)},'
            f'"usage":{{"prompt_tokens":{usage},"total_tokens":{usage}}}}}')


def parts_for(count: int) -> int:
    return -(-count // PART_LINES)


def block_ids(chunk: int, count: int, make: Callable[[int, int], str]) -> list[str]:
    return [make(chunk, part) for part in range(parts_for(count))]
