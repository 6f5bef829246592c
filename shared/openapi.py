"""The gateway's OpenAPI 3.1 document, served at ``/api/openapi.json``, built from the route table.

Paths, methods, summaries and answers come from ``shared/routes.py``; this module holds the schemas
they name and turns the table into the document.

Written as data rather than generated: the gateway forwards bodies it does not fully model, so the
document declares only the fields the gateway validates (everything else is allowed) and every error
status the gateway itself can answer. Fuzzing (schemathesis) runs against this document.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shared.batch import file_expiry
from shared.batch.openapi_schema import CREATE_REQUEST as BATCH_CREATE_REQUEST
from shared.jobs.openapi_schema import SUBMIT_REQUEST
from shared.query_params import API_VERSION, SERVED_API_VERSION, QueryParam
from shared.routes import API_ROUTES, PUBLIC_ROUTES, ApiRoute, Operation

ERROR_STATUSES = {
    "409": "The job ended before it was planned (it has no results), or the job or batch to cancel has already ended",
    "400": ("Invalid JSON (duplicate keys included), a missing field, more than 2048 embedding inputs, "
            "an MCP server that is not allowed, or a query parameter that is unknown or invalid"),
    "401": "Missing or invalid function key (the Functions host), or an ambiguous one: two keys, or an empty one",
    "403": "Origin not allowed (CORS)",
    "404": "Unknown model (not in the allowlist) or unknown object",
    "405": "Method not allowed on this route",
    "413": "Request body too large",
    "422": "A field has the wrong type or value",
    "429": "Rate limited (retry-after and retry-after-ms tell when to retry)",
    "502": "Upstream unreachable",
    "503": "Storage unavailable (retry-after tells when to retry)",
    "504": "Upstream out of time",
}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: str) -> dict[str, Any]:
    """Error responses of a key-protected route: the statuses given, 400 (every route checks its query) and 401."""
    return {s: {"description": ERROR_STATUSES[s], "content": {"application/json": {"schema": _ERROR}}}
            for s in sorted({"400", "401", *statuses})}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_EXPIRY_SECONDS: dict[str, Any] = {"type": "integer", "minimum": file_expiry.MIN_SECONDS,
                                   "maximum": file_expiry.MAX_SECONDS}
# expires_after flattened into form fields: the SDKs' ``[anchor]`` and Azure's documented ``.anchor``.
_FLAT_SPELLINGS = (("[", "]"), (".", ""))
_MODEL = {"type": "string", "minLength": 1, "description": "Deployment name or alias (see GET /v1/models)",
          "examples": ["gpt-4o-mini"]}


# Request bodies and answers the operations in shared/routes.py refer to by name.
_CHAT = {"type": "object", "required": ["model", "messages"], "additionalProperties": True, "properties": {
    "model": _MODEL,
    "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant"]}, "content": {"type": "string"}}}},
    "stream": {"type": "boolean"},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
}}
_RESPONSES = {"type": "object", "required": ["model"], "additionalProperties": True, "properties": {
    "model": _MODEL,
    "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": _ANY_OBJECT}]},
    "instructions": {"type": "string"},
    "stream": {"type": "boolean"},
    "previous_response_id": {"type": "string"},
    "tools": {"type": "array", "items": _ANY_OBJECT},
}}
_EMBEDDINGS = {"type": "object", "required": ["model", "input"], "additionalProperties": True, "properties": {
    "model": _MODEL,
    "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 2048},
                        {"type": "array", "items": {"type": "integer"}},
                        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                         "maxItems": 2048}]},
    "dimensions": {"type": "integer", "minimum": 1, "maximum": 3072},
    "encoding_format": {"enum": ["float", "base64"]},
}}
COMPONENTS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"], "properties": {
            "message": {"type": "string"}, "type": {"type": "string"},
            "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}},
    "ChatCompletionRequest": _CHAT,
    "ResponsesRequest": _RESPONSES,
    "EmbeddingsRequest": _EMBEDDINGS,
    "EmbeddingJobRequest": SUBMIT_REQUEST,
    "BatchCreateRequest": BATCH_CREATE_REQUEST,
    # POST /v1/files: a multipart form (shared.batch.files). expires_after in one of three spellings
    # (shared.batch.file_expiry): the SDKs' brackets, Azure's documented dots, or one JSON part.
    "FileUpload": {"type": "object", "required": ["file", "purpose"], "additionalProperties": False, "properties": {
        "file": {"type": "string", "format": "binary", "description": "JSONL, one batch request per line"},
        "purpose": {"enum": ["batch"]},
        **{f"expires_after{open_}anchor{close}": {"enum": ["created_at"]} for open_, close in _FLAT_SPELLINGS},
        **{f"expires_after{open_}seconds{close}": _EXPIRY_SECONDS for open_, close in _FLAT_SPELLINGS},
        "expires_after": {"type": "object", "required": ["anchor", "seconds"], "additionalProperties": False,
                          "properties": {"anchor": {"enum": ["created_at"]}, "seconds": _EXPIRY_SECONDS}},
    }, "dependentRequired": {
        f"expires_after{open_}{a}{close}": [f"expires_after{open_}{b}{close}"]
        for open_, close in _FLAT_SPELLINGS for a, b in (("anchor", "seconds"), ("seconds", "anchor"))}},
    "ModelList": {"type": "object", "required": ["object", "data"]},
    "Model": {"type": "object", "required": ["id", "object", "created", "owned_by"]},
}

# Path parameters by name: what the gateway accepts for each (response ids must be plain).
PARAMETERS: dict[str, dict[str, Any]] = {
    "response_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$"},
    "job_id": {"type": "string"},
    "batch_id": {"type": "string"},
    "file_id": {"type": "string"},
    "model": {"type": "string"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: ApiRoute, op: Operation) -> dict[str, Any]:
    content = {media: {"schema": (_ref(op.ok_schema) if op.ok_schema else _ANY_OBJECT)
                       if media == "application/json" else {"type": "string"}} for media in op.ok_media}
    described: dict[str, Any] = {"summary": op.summary}
    parameters: list[dict[str, Any]] = []
    if route.parameter:
        parameters.append({"name": route.parameter, "in": "path", "required": True,
                           "schema": PARAMETERS[route.parameter]})
    parameters += [_query_parameter(param) for param in op.query]
    parameters.append(_API_VERSION)  # every operation reads its query (shared.http._call)
    described["parameters"] = parameters
    if op.request_schema:
        described["requestBody"] = {"required": True,
                                    "content": {op.request_media: {"schema": _ref(op.request_schema)}}}
    described["responses"] = {str(op.ok_status): {"description": op.ok_description, "content": content},
                              **_errors(*op.errors)}
    return described


# Accepted (and not relayed) on every operation; see shared.query_params.
_API_VERSION: dict[str, Any] = {
    "name": API_VERSION, "in": "query", "required": False, "schema": {"enum": [SERVED_API_VERSION]},
    "description": "Azure's optional api-version; the gateway serves v1 (preview is refused)"}


def _query_parameter(param: QueryParam) -> dict[str, Any]:
    """A query parameter as declared in the route table (what shared.query_params accepts)."""
    schema: dict[str, Any] = {"type": param.kind} if param.kind != "enum" else {"enum": list(param.choices)}
    if param.kind == "integer":
        schema |= {"minimum": param.minimum, "maximum": param.maximum}
    if param.kind == "string":
        schema |= {"minLength": 1, "maxLength": 256, "pattern": "^[!-~]+$"}
    if param.many:
        schema = {"type": "array", "items": schema}
    return {"name": param.name, "in": "query", "required": False, "description": param.description,
            "schema": schema, **({"explode": True} if param.many else {})}


def build() -> dict[str, Any]:
    paths: dict[str, Any] = {
        f"/{route.path}": {method.lower(): _operation(route, op) for method, op in route.operations.items()}
        for route in API_ROUTES
    }
    for public in PUBLIC_ROUTES:
        if public.summary:
            paths[f"/{public.path}"] = {method.lower(): {
                "summary": public.summary, "security": [],
                "responses": {"200": _json(_ANY_OBJECT, "Alive")}} for method in public.methods}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Azure OpenAI gateway", "version": "1.0.0",
                 "description": "OpenAI-compatible gateway to Azure OpenAI's v1 API on Azure Functions."},
        "servers": [{"url": "/api"}],
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
        },
        "security": [{"functionKey": []}],
        "paths": paths,
    }


@cache
def document() -> bytes:
    return json.dumps(build(), separators=(",", ":")).encode()


async def serve_document(request: Request) -> Response:
    """``GET /api/openapi.json`` (anonymous: the description holds no secrets)."""
    return Response(document(), media_type="application/json")
