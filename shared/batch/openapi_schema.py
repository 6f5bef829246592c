"""JSON Schema of the ``POST /api/v1/batches`` body, for the OpenAPI document.

The same fields ``service.CreateBatchRequest`` accepts (a test keeps them in agreement). Plain data,
no imports: building the OpenAPI document must not load the batch service.
"""

from __future__ import annotations

from typing import Any

CREATE_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["input_file_id", "endpoint", "completion_window"],
    "additionalProperties": False,
    "properties": {
        "input_file_id": {"type": "string", "minLength": 1, "maxLength": 256,
                          "description": "An uploaded file (POST /v1/files, purpose=batch) of JSONL requests"},
        "endpoint": {"enum": ["/v1/embeddings", "/v1/chat/completions", "/v1/responses", "/embeddings",
                              "/chat/completions", "/responses"],
                     "description": "The url every line of the file calls (Azure's spelling without /v1 too)"},
        "completion_window": {"enum": ["24h"]},
        "metadata": {"type": ["object", "null"], "maxProperties": 16,
                     "propertyNames": {"minLength": 1, "maxLength": 64},
                     "additionalProperties": {"type": "string", "maxLength": 512}},
        "output_expires_after": {"type": "object", "required": ["anchor", "seconds"], "additionalProperties": False,
                                 "properties": {"anchor": {"enum": ["created_at"]},
                                                "seconds": {"type": "integer", "minimum": 3600,
                                                            "maximum": 2592000}}},
    },
}
