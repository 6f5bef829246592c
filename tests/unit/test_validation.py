"""Request validation: the right status, param and code for each kind of bad input."""

from __future__ import annotations

import json

import pytest

from shared.config import Settings
from shared.errors import GatewayError
from shared.schemas import ChatCompletionRequest, EmbeddingsRequest, ResponsesRequest
from shared.validation import check_mcp_tools, mcp_server_allowed, parse_body, resolve_model, with_model

SETTINGS = Settings(upstream_base_url="http://upstream/v1/", models={"gpt": "gpt", "fast": "gpt-mini"},
                    mcp_allowed_servers=("https://mcp.example.com/api", "conn_dropbox"))


def error_of(raw: bytes, schema: type = ChatCompletionRequest) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse_body(raw, schema)
    return info.value


def test_valid_body_keeps_unknown_fields() -> None:
    request = parse_body(b'{"model":"gpt","messages":[],"stream":true,"x_new_field":{"a":1}}', ChatCompletionRequest)
    assert request.stream is True
    assert request.model_extra == {"x_new_field": {"a": 1}}


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"{'model': 1}", b"\xff\xfe"])
def test_bad_json_is_400_invalid_json(raw: bytes) -> None:
    error = error_of(raw)
    assert (error.status, error.code) == (400, "invalid_json")


def test_non_object_body_is_400() -> None:
    error = error_of(b"[1,2]")
    assert (error.status, error.code) == (400, "invalid_json")


def test_missing_field_is_400_with_param() -> None:
    error = error_of(b'{"messages":[]}')
    assert (error.status, error.param, error.code) == (400, "model", "missing_required_parameter")


@pytest.mark.parametrize(("raw", "param"), [
    (b'{"model":"gpt","messages":"hi"}', "messages"),
    (b'{"model":"gpt","messages":[],"stream":"yes"}', "stream"),
    (b'{"model":7,"messages":[]}', "model"),
    (b'{"model":"","messages":[]}', "model"),
])
def test_wrong_type_is_422_with_param(raw: bytes, param: str) -> None:
    error = error_of(raw)
    assert (error.status, error.param, error.code) == (422, param, "invalid_value")


def test_responses_and_embeddings_schemas() -> None:
    assert parse_body(b'{"model":"gpt","input":"hi"}', ResponsesRequest).input == "hi"
    assert parse_body(b'{"model":"gpt","input":[[1,2],[3]]}', EmbeddingsRequest).input == [[1, 2], [3]]
    assert error_of(b'{"model":"gpt","input":{"a":1}}', EmbeddingsRequest).status == 422


def test_model_aliases_and_allowlist() -> None:
    assert resolve_model("gpt", SETTINGS) == "gpt"
    assert resolve_model("fast", SETTINGS) == "gpt-mini"
    with pytest.raises(GatewayError) as info:
        resolve_model("gpt-5-secret", SETTINGS)
    assert (info.value.status, info.value.code, info.value.param) == (404, "model_not_found", "model")


def test_alias_rewrite_changes_only_the_model() -> None:
    out = json.loads(with_model(b'{"model":"fast","messages":[{"role":"user","content":"x"}],"z":1}', "gpt-mini"))
    assert out == {"model": "gpt-mini", "messages": [{"role": "user", "content": "x"}], "z": 1}


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://mcp.example.com/api", True),
    ("https://mcp.example.com/api/v2/sse", True),
    ("https://MCP.example.com/api", True),
    ("https://mcp.example.com/apix", False),
    ("http://mcp.example.com/api", False),
    ("https://mcp.example.com.evil.test/api", False),
    ("https://evil.test/?u=https://mcp.example.com/api", False),
    ("javascript:alert(1)", False),
])
def test_mcp_server_prefix_matching(url: str, allowed: bool) -> None:
    assert mcp_server_allowed(url, SETTINGS.mcp_allowed_servers) is allowed


def test_mcp_tools_check_names_the_offending_tool() -> None:
    check_mcp_tools([{"type": "function", "name": "f"}, {"type": "mcp", "server_url": "https://mcp.example.com/api"},
                     {"type": "mcp", "connector_id": "conn_dropbox"}], SETTINGS)
    with pytest.raises(GatewayError) as info:
        check_mcp_tools([{"type": "function"}, {"type": "mcp", "server_url": "https://evil.test/mcp"}], SETTINGS)
    assert (info.value.status, info.value.param, info.value.code) == (400, "tools[1].server_url",
                                                                      "mcp_server_not_allowed")


def test_upstream_errors_are_completed_to_openai_shape() -> None:
    from shared.http import openai_error_body

    azure_429 = json.loads(openai_error_body(429, b'{"error":{"code":"429","message":"slow down","x":1}}'))
    assert azure_429 == {"error": {"code": "429", "message": "slow down", "x": 1, "type": "rate_limit_error",
                                   "param": None}}
    full = b'{"error":{"message":"m","type":"t","param":"p","code":"c"}}'
    assert openai_error_body(400, full) == full
    html = json.loads(openai_error_body(502, b"<html>Bad gateway</html>"))["error"]
    assert html["type"] == "upstream_error" and "Bad gateway" in html["message"] and html["code"] == "upstream_502"
