"""Pydantic models of the request bodies the OpenAI-compatible routes accept (parsed by
``shared.validation``; the OpenAPI document's JSON Schemas for them are in ``shared.openapi``).

Only the fields the gateway acts on are declared; everything else is allowed and forwarded untouched
(the upstream API grows faster than we do). Validation is strict on those few fields so that a
``"stream": "yes"`` is reported here rather than half-handled.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# "any array must be 2048 dimensions or less" (the v1 API's embeddings request): more inputs are
# refused before the upstream is called; embedding jobs take any number.
MAX_EMBEDDING_INPUTS = 2048


class _Passthrough(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ChatCompletionRequest(_Passthrough):
    model: str = Field(min_length=1)
    messages: list[Any]
    stream: bool | None = None
    # Checked against MCP_ALLOWED_SERVERS like the Responses API's: an upstream may act on MCP tools here too.
    tools: list[dict[str, Any]] | None = None


class ResponsesRequest(_Passthrough):
    model: str = Field(min_length=1)
    input: str | list[Any] | None = None
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    previous_response_id: str | None = None


class EmbeddingsRequest(_Passthrough):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
