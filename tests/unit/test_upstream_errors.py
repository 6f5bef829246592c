"""Upstream errors answered as the gateway answers the same condition, whatever shape they came in."""

from __future__ import annotations

import json

import httpx2
import pytest

from shared.context import Reply
from shared.errors import UpstreamError, sse_error_event
from shared.errors.upstream import openai_error_body, upstream_error
from shared.http import _upstream_error_reply


def upstream_error_reply(response: httpx2.Response) -> Reply:
    """What the HTTP adapter answers when the upstream's error status reaches it."""
    return _upstream_error_reply(UpstreamError(response))


def error_of(status: int, body: bytes) -> dict[str, object]:
    error: dict[str, object] = json.loads(openai_error_body(status, body))["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(("status", "body", "kind", "message"), [
    (404, b'{"error": "model not found"}', "invalid_request_error", "model not found"),
    (422, b'{"detail": [{"loc": ["body", "input"], "msg": "field required"}]}', "invalid_request_error",
     "body.input: field required"),
    (500, b'{"message": "boom"}', "server_error", "boom"),
    (503, b"", "server_error", "The upstream answered 503 with no details."),
    (502, b"<html><body><h1>Bad &amp; gateway</h1></body></html>", "server_error",
     "The upstream answered 502: Bad & gateway"),
    (429, b"slow down", "rate_limit_error", "The upstream answered 429: slow down"),
])
def test_bodies_that_are_not_openai_errors(status: int, body: bytes, kind: str, message: str) -> None:
    error = error_of(status, body)
    assert (error["type"], error["message"]) == (kind, message)
    assert error["code"] == ("rate_limit_exceeded" if status == 429 else f"upstream_{status}")


def test_an_openai_rate_limit_code_is_kept_and_azures_is_named() -> None:
    openai_shaped = b'{"error":{"message":"m","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}'
    assert openai_error_body(429, openai_shaped) == openai_shaped
    assert error_of(429, b'{"error":{"code":"429","message":"m"}}')["code"] == "rate_limit_exceeded"
    assert error_of(400, b'{"error":{"code":"429","message":"m"}}')["code"] == "429"  # only a 429 is renamed


def test_a_429_gets_both_retry_hints_and_its_reset_headers() -> None:
    response = httpx2.Response(429, headers={"retry-after": "7", "x-ratelimit-reset-tokens": "6s"},
                               content=b'{"error":{"code":"429","message":"m"}}')
    reply = upstream_error_reply(response)
    assert reply.status == 429
    assert (reply.headers["retry-after"], reply.headers["retry-after-ms"]) == ("7", "7000")
    assert reply.headers["x-ratelimit-reset-tokens"] == "6s"


@pytest.mark.parametrize("status", [401, 403])
def test_the_gateways_identity_refused_is_a_502(status: int) -> None:
    reply = upstream_error_reply(httpx2.Response(status, content=b'{"error":{"code":"401","message":"nope"}}'))
    error = json.loads(reply.body)["error"]
    assert reply.status == 502 and error["code"] == "upstream_auth_failed" and error["type"] == "server_error"
    assert "nope" in error["message"] and "Cognitive Services OpenAI User" in error["message"]


def test_the_upstreams_fields_are_kept_byte_for_byte_and_readable_by_the_sse_event() -> None:
    body = b'{"error":{"message":"m","type":"invalid_request_error","param":"p","code":"c","inner":1}}'
    response = httpx2.Response(400, headers={"x-ratelimit-remaining-tokens": "9"}, content=body)
    reply = upstream_error_reply(response)
    assert (reply.status, reply.body) == (400, body)
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["x-ratelimit-remaining-tokens"] == "9"
    error = upstream_error(response, {})
    assert (error.message, error.type, error.param, error.code) == ("m", "invalid_request_error", "p", "c")
    event = json.loads(sse_error_event(error).split(b"data: ", 1)[1])
    assert event["error"]["code"] == "c"
