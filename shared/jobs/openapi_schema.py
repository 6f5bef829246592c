"""JSON Schema of the ``POST /api/v1/embeddings/jobs`` body, for the OpenAPI document.

The body is the caller-facing part of a v1 job message (``schemas/embedding-job-message.v1.json``)
and is validated by ``service.SubmitRequest``; a test keeps the three in agreement, so the document
that clients (and the fuzzer) read accepts exactly what the route accepts. Plain data, no imports:
building the OpenAPI document must not load the job pipeline.
"""

from __future__ import annotations

from typing import Any

INPUT_ITEM: dict[str, Any] = {"oneOf": [
    {"type": "string"},
    {"type": "object", "required": ["id", "text"], "additionalProperties": False, "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 512}, "text": {"type": "string"}}},
]}

SUBMIT_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 256,
                  "description": "Embedding deployment or alias (see GET /v1/models)",
                  "examples": ["text-embedding-3-small"]},
        "input": {"type": "array", "minItems": 1, "items": INPUT_ITEM,
                  "description": "Texts, or {id, text} objects whose id is echoed on the result line"},
        "dimensions": {"type": "integer", "minimum": 1, "maximum": 8192},
        "metadata": {"type": "object", "maxProperties": 16, "propertyNames": {"minLength": 1, "maxLength": 64},
                     "additionalProperties": {"type": "string", "maxLength": 512}},
    },
}
