"""The gateway's OpenAPI 3.1 document, served at ``/api/openapi.json``.

Written as data rather than generated: the gateway forwards bodies it does not fully model, so the
document declares only the fields the gateway validates (everything else is allowed) and every error
status the gateway itself can answer. Fuzzing (schemathesis) runs against this document.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from shared.jobs.schema import SUBMIT_REQUEST

ERROR_STATUSES = {
    "409": "The job has not finished yet",
    "400": ("Invalid JSON (duplicate keys included), a missing field, more than 2048 embedding inputs, "
            "or an MCP server that is not allowed"),
    "401": "Missing or invalid function key (the Functions host), or an ambiguous one: two keys, or an empty one",
    "403": "Origin not allowed (CORS)",
    "404": "Unknown model (not in the allowlist) or unknown object",
    "405": "Method not allowed on this route",
    "413": "Request body too large",
    "422": "A field has the wrong type or value",
    "429": "Rate limited (retry-after and retry-after-ms tell when to retry)",
    "502": "Upstream unreachable",
    "504": "Upstream out of time",
}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: str) -> dict[str, Any]:
    """Error responses of a key-protected route: the statuses given, and 401."""
    return {s: {"description": ERROR_STATUSES[s], "content": {"application/json": {"schema": _ERROR}}}
            for s in sorted({"401", *statuses})}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_MODEL = {"type": "string", "minLength": 1, "description": "Deployment name or alias (see GET /v1/models)",
          "examples": ["gpt-4o-mini"]}
_UPSTREAM = ("400", "403", "404", "413", "422", "429", "502", "504")


def _create(summary: str, body: dict[str, Any], streams: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ANY_OBJECT}}
    if streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {"post": {
        "summary": summary,
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "The upstream's answer, relayed", "content": content},
                      **_errors(*_UPSTREAM)},
    }}


def build() -> dict[str, Any]:
    chat = {"type": "object", "required": ["model", "messages"], "additionalProperties": True, "properties": {
        "model": _MODEL,
        "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant"]}, "content": {"type": "string"}}}},
        "stream": {"type": "boolean"},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
    }}
    responses = {"type": "object", "required": ["model"], "additionalProperties": True, "properties": {
        "model": _MODEL,
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": _ANY_OBJECT}]},
        "instructions": {"type": "string"},
        "stream": {"type": "boolean"},
        "previous_response_id": {"type": "string"},
        "tools": {"type": "array", "items": _ANY_OBJECT},
    }}
    embeddings = {"type": "object", "required": ["model", "input"], "additionalProperties": True, "properties": {
        "model": _MODEL,
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 2048},
                            {"type": "array", "items": {"type": "integer"}},
                            {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                             "maxItems": 2048}]},
        "dimensions": {"type": "integer", "minimum": 1, "maximum": 3072},
        "encoding_format": {"enum": ["float", "base64"]},
    }}
    job = SUBMIT_REQUEST
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    response_id = {"name": "response_id", "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$"}}
    stored = {"200": _json(_ANY_OBJECT, "The stored response"), **_errors("404", "429", "502", "504")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Azure OpenAI gateway", "version": "1.0.0",
                 "description": "OpenAI-compatible gateway to Azure OpenAI's v1 API on Azure Functions."},
        "servers": [{"url": "/api"}],
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["message", "type", "param", "code"], "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"},
                    "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}},
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
        },
        "security": [{"functionKey": []}],
        "paths": {
            "/v1/chat/completions": _create("Chat Completions (stream with \"stream\": true)", chat, True),
            "/v1/responses": _create("Responses API (stream with \"stream\": true)", responses, True),
            "/v1/responses/{response_id}": {
                "get": {"summary": "A stored response", "parameters": [response_id], "responses": stored},
                "delete": {"summary": "Delete a stored response", "parameters": [response_id], "responses": stored},
            },
            "/v1/embeddings": _create("Embeddings (synchronous)", embeddings, False),
            "/v1/embeddings/jobs": {"post": {
                "summary": "Submit an embedding job",
                "requestBody": {"required": True, "content": {"application/json": {"schema": job}}},
                "responses": {"202": _json(_ANY_OBJECT, "Queued; Location names the job"),
                              **_errors("400", "404", "413", "422", "502")},
            }},
            "/v1/embeddings/jobs/{job_id}": {"get": {
                "summary": "An embedding job's status and progress", "parameters": [job_id],
                "responses": {"200": _json(_ANY_OBJECT, "The job"), **_errors("404", "502")}}},
            "/v1/embeddings/jobs/{job_id}/results": {"get": {
                "summary": "An embedding job's results as JSONL, in input order", "parameters": [job_id],
                "responses": {"200": {"description": "JSONL", "content": {"application/x-ndjson": {
                    "schema": {"type": "string"}}}}, **_errors("404", "409", "502")}}},
            "/v1/models": {"get": {"summary": "Models callers may use", "responses": {
                "200": _json({"type": "object", "required": ["object", "data"]}, "The allowlist"), **_errors()}}},
            "/health": {"get": {"summary": "Liveness (anonymous, no upstream call)", "security": [],
                                "responses": {"200": _json(_ANY_OBJECT, "Alive")}}},
        },
    }


@lru_cache(maxsize=1)
def document() -> bytes:
    return json.dumps(build(), separators=(",", ":")).encode()
