"""What HTTP handlers may return, converted as the worker would (no server needed)."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from starlette.responses import JSONResponse, Response, StreamingResponse

from devhost.http_app import to_response


def test_starlette_responses_pass_through_untouched() -> None:
    async def body() -> object:
        yield b"x"

    streaming = StreamingResponse(body())
    assert to_response(streaming) is streaming
    plain = JSONResponse({"a": 1})
    assert to_response(plain) is plain


def test_classic_http_response_is_converted() -> None:
    converted = to_response(func.HttpResponse(json.dumps({"ok": True}), status_code=202, mimetype="application/json",
                                              headers={"X-Id": "7"}))
    assert converted.status_code == 202
    assert converted.body == b'{"ok": true}'
    assert converted.headers["content-type"] == "application/json"
    assert converted.headers["x-id"] == "7"
    assert converted.headers["content-length"] == str(len(converted.body))


@pytest.mark.parametrize(
    ("value", "status", "content_type"),
    [(None, 204, None), ("hi", 200, "text/plain; charset=utf-8"), ({"a": 1}, 200, "application/json")],
)
def test_plain_values(value: object, status: int, content_type: str | None) -> None:
    converted: Response = to_response(value)
    assert converted.status_code == status
    assert converted.headers.get("content-type") == content_type


def test_unknown_values_are_errors() -> None:
    with pytest.raises(TypeError):
        to_response(object())
