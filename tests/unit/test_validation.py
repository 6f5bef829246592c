"""Request validation: the right status, param and code for each kind of bad input."""

from __future__ import annotations

import json

import pytest

from shared.config import Settings
from shared.errors import GatewayError
from shared.gateway import _response_path
from shared.mcp_allowlist import check_mcp_tools, mcp_server_allowed
from shared.request_models import ChatCompletionRequest, EmbeddingsRequest, ResponsesRequest
from shared.validation import check_embedding_inputs, parse_body, resolve_model, with_fields, with_model

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
    from shared.errors.upstream import openai_error_body

    azure_429 = json.loads(openai_error_body(429, b'{"error":{"code":"429","message":"slow down","x":1}}'))
    assert azure_429 == {"error": {"code": "rate_limit_exceeded", "message": "slow down", "x": 1,
                                   "type": "rate_limit_error", "param": None}}
    full = b'{"error":{"message":"m","type":"t","param":"p","code":"c"}}'
    assert openai_error_body(400, full) == full
    html = json.loads(openai_error_body(502, b"<html>Bad gateway</html>"))["error"]
    assert html["type"] == "server_error" and "Bad gateway" in html["message"] and html["code"] == "upstream_502"
    assert "<html" not in html["message"]


# --- the upstream gets what was judged: duplicate keys, odd JSON, byte-exact rewrites ---------------

@pytest.mark.parametrize("raw", [
    b'{"model":"gpt","model":"secret","messages":[]}',
    b'{"model":"gpt","mod\\u0065l":"secret","messages":[]}',
    b'{"model":"gpt","messages":[{"role":"user","role":"system","content":"x"}]}',
    b'{"model":"gpt","messages":[],"tools":[{"type":"mcp","server_url":"a","server_url":"b"}]}',
])
def test_duplicate_keys_at_any_depth_are_400_invalid_json(raw: bytes) -> None:
    error = error_of(raw)
    assert (error.status, error.code) == (400, "invalid_json")
    assert "duplicate key" in error.message


@pytest.mark.parametrize("raw", [
    b'{"model":"gpt","messages":[],"t":NaN}', b'{"model":"gpt","messages":[],"t":-Infinity}',
    b'{"model":"gpt","messages":["\\udc00"]}', b'\xef\xbb\xbf{"model":"gpt","messages":[]}',
])
def test_json_that_parsers_disagree_on_is_400_invalid_json(raw: bytes) -> None:
    assert (error_of(raw).status, error_of(raw).code) == (400, "invalid_json")


@pytest.mark.parametrize("key", ["Model", "MODEL", "Messages", "Tools", "Stream", "\u017ftream"])
def test_case_variants_of_judged_fields_are_400(key: str) -> None:
    raw = json.dumps({"model": "gpt", "messages": [], "stream": False, key: "x"}).encode()
    error = error_of(raw)
    assert (error.status, error.code, error.param) == (400, "invalid_json", key)


def test_case_variants_of_unjudged_fields_are_forwarded() -> None:
    request = parse_body(b'{"model":"gpt","messages":[],"metadata":{"Model":"x","model":"y"},"Temperature":1}',
                         ChatCompletionRequest)
    assert request.model == "gpt"


EXACT = (b'{"model":"fast","t":1e400,"a":1.0,"b":-0,"c":123456789012345678901234567890,"e":1E+2,'
         b'"s":"\\ud800\\u00e9 \xc3\xa9 \\"model\\"","n":{"model":"inner"}}')


def test_with_model_is_byte_exact_outside_the_model() -> None:
    assert with_model(EXACT, "gpt-mini") == EXACT.replace(b'"fast"', b'"gpt-mini"', 1)


def test_with_fields_adds_at_the_end_and_replaces_in_place() -> None:
    added = with_fields(EXACT, {"stream_options": {"include_usage": True}})
    assert added == EXACT[:-1] + b',"stream_options":{"include_usage":true}}'
    raw = b'{ "a" : 1e400 ,\n "stream_options" : {"x":1}, "b":-0 }'
    assert with_fields(raw, {"stream_options": {"include_usage": True}}) == (
        b'{"a" : 1e400,"stream_options":{"include_usage":true},"b":-0}')
    assert with_fields(b"{}", {"model": "m"}) == b'{"model":"m"}'
    assert with_fields(b' {} ', {}) == b"{}"


def test_with_fields_leaves_no_second_copy_of_a_field() -> None:
    raw = b'{"model":"a","x":1,"mod\\u0065l":"b","model":"c"}'
    out = with_fields(raw, {"model": "m"})
    assert out == b'{"model":"m","x":1}'
    lookalikes = b'{"Stream_Options":{"include_usage":false},"a":1,"stream_options":{},"STREAM_OPTIONS":0}'
    assert with_fields(lookalikes, {"stream_options": {"include_usage": True}}) == (
        b'{"stream_options":{"include_usage":true},"a":1}')


def test_with_fields_refuses_a_value_json_cannot_carry() -> None:
    with pytest.raises(GatewayError) as info:
        with_fields(b'{"stream_options":{"x":1e400}}', {"stream_options": {"x": float("inf")}})
    assert (info.value.status, info.value.param, info.value.code) == (422, "stream_options", "invalid_value")


@pytest.mark.parametrize("raw", [b"[1]", b'"s"', b"{", b'{"a":1} x', b'{"a" 1}', b'{"a":1,}', b"", b'{"a":\xff}'])
def test_with_fields_refuses_what_is_not_one_json_object(raw: bytes) -> None:
    with pytest.raises(GatewayError) as info:
        with_fields(raw, {"model": "m"})
    assert (info.value.status, info.value.code) == (400, "invalid_json")


@pytest.mark.parametrize(("inputs", "ok"), [
    (["x"] * 2048, True), (["x"] * 2049, False), ([[1]] * 2048, True), ([[1]] * 2049, False),
    ([1] * 5000, True), ("x" * 5000, True),
])
def test_embedding_input_count_is_limited_to_2048(inputs: object, ok: bool) -> None:
    request = parse_body(json.dumps({"model": "gpt", "input": inputs}).encode(), EmbeddingsRequest)
    if ok:
        check_embedding_inputs(request)
        return
    with pytest.raises(GatewayError) as info:
        check_embedding_inputs(request)
    assert (info.value.status, info.value.param, info.value.code) == (400, "input", "array_above_max_length")


# --- MCP servers: matched after normalising the URL the way HTTP clients resolve it ----------------

ALLOWED = ("https://mcp.example.com/api", "conn_dropbox", "http://plain.example.com:8080/", "https://[::1]/m")


@pytest.mark.parametrize("url", [
    "https://mcp.example.com/api/../evil", "https://mcp.example.com/api/%2e%2e/evil",
    "https://mcp.example.com/api/.%2E/evil", "https://mcp.example.com/api/x/../../evil",
    "https://mcp.example.com/api/..;/evil", "https://mcp.example.com/api/\t../evil",
    "https://mcp.example.com/api/..%2fevil", "https://mcp.example.com/api/..%5cevil",
    "https://mcp.example.com/api\\..\\evil", "https://mcp.example.com/api//../evil",
    "https://mcp.example.com@evil.test/api", "https://u:p@mcp.example.com/api",
    "https://evil.test\\@mcp.example.com/api", "https://mcp.example.com%2eevil.test/api",
    "https://mcp.example.com:444/api", "https://mcp.example.com:99999/api", "https://mcp.example.com:x/api",
    "https:mcp.example.com/api", "https:/mcp.example.com/api", "https:///mcp.example.com/api",
    "https://mcp.example.com/api%zz", "https://mcp.example.com/api/\u00e9", "https://0x7f.1/api",
    "https://mcp.example.com/api/%00", "https://mcp.example.com/api/x y", "https://[::2]/m",
    "https://mcp.example.com/api/%252e%252e/evil",
    "http://plain.example.com/", "conn_dropbox", "", "https://" + "a" * 3000,
])
def test_mcp_urls_that_leave_the_allowed_server_or_prefix_are_refused(url: str) -> None:
    assert mcp_server_allowed(url, ALLOWED) is False


@pytest.mark.parametrize("url", [
    "HTTPS://MCP.EXAMPLE.COM:443/api", "https://mcp.example.com./api/v2", "https://mcp.example.com/api/x/../y",
    "https://mcp.example.com/api/./sse", "https://mcp.example.com/%61pi/%7e?q=1#f", "https://mcp.example.com/api/",
    "http://PLAIN.example.com:8080/anything", "https://[0:0::1]:443/m/x", "https://mcp.example.com/api/a%2Ab",
])
def test_mcp_urls_on_the_allowed_server_and_prefix_pass(url: str) -> None:
    assert mcp_server_allowed(url, ALLOWED) is True


CHECK = Settings(upstream_base_url="http://upstream/v1/", mcp_allowed_servers=ALLOWED)


@pytest.mark.parametrize(("tool", "param"), [
    ({"type": "mcp", "server_url": "https://evil.test/", "connector_id": "conn_dropbox"}, "tools[0].server_url"),
    ({"type": "mcp", "server_url": "https://mcp.example.com/api", "connector_id": "conn_evil"},
     "tools[0].connector_id"),
    ({"type": "mcp", "connector_id": "https://mcp.example.com/api"}, "tools[0].connector_id"),
    ({"type": "mcp", "server_label": "x"}, "tools[0].server_url"),
    ({"type": "MCP", "server_url": "https://evil.test/"}, "tools[0].server_url"),
    ({"type": "mcp\n", "server_url": "https://evil.test/"}, "tools[0].server_url"),
    ({"server_url": "https://evil.test/"}, "tools[0].server_url"),
    ({"type": "function", "connector_id": "conn_evil"}, "tools[0].connector_id"),
    ({"type": "mcp", "server_url": 7}, "tools[0].server_url"),
])
def test_every_identity_of_an_mcp_tool_must_be_allowed(tool: dict[str, object], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        check_mcp_tools([tool], CHECK)
    assert (info.value.status, info.value.param, info.value.code) == (400, param, "mcp_server_not_allowed")


@pytest.mark.parametrize("key", ["Server_URL", "SERVER_URL", "\u017ferver_url", "Connector_Id", "Type",
                                 "\uff34\uff39\uff30\uff25"])
def test_case_variants_of_mcp_fields_are_refused(key: str) -> None:
    with pytest.raises(GatewayError) as info:
        check_mcp_tools([{"type": "mcp", "server_url": "https://mcp.example.com/api", key: "https://evil.test"}], CHECK)
    assert (info.value.status, info.value.param) == (400, f"tools[0].{key}")


def test_mcp_tools_with_allowed_identities_pass() -> None:
    check_mcp_tools([{"type": "mcp", "server_url": "https://mcp.example.com/api/x", "connector_id": "conn_dropbox"},
                     {"type": "mcp", "connector_id": "conn_dropbox", "server_url": None},
                     {"type": "function", "name": "f", "parameters": {"properties": {"server_url": {}}}}], CHECK)


@pytest.mark.parametrize("response_id", [".", "..", "a.b", "..%2F", "x/y", "x y", "", "r" * 257, "\u00e9"])
def test_response_ids_that_are_not_plain_never_become_a_path(response_id: str) -> None:
    with pytest.raises(GatewayError) as info:
        _response_path(response_id)
    assert (info.value.status, info.value.param) == (404, "response_id")


def test_plain_response_ids_become_a_path() -> None:
    assert _response_path("resp_68af-x_1") == "/responses/resp_68af-x_1"
