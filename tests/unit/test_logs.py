"""Request log lines: structured, with ids and timing, and no content unless LOG_CONTENT is on."""

from __future__ import annotations

import json
import logging

import pytest

from shared.context import RequestContext, capture_content, log_request


def test_log_line_is_json_with_ids_and_no_content(caplog: pytest.LogCaptureFixture) -> None:
    ctx = RequestContext.new(10)
    ctx.model, ctx.upstream_request_id, ctx.attempts = "gpt", "apim-1", 2
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        log_request(ctx, method="POST", route="v1/chat/completions", status=200, streamed=False)
    line = json.loads(caplog.records[-1].getMessage())
    assert line["request_id"] == ctx.request_id and line["upstream_request_id"] == "apim-1"
    assert line["attempts"] == 2 and line["status"] == 200 and "content" not in line


def test_content_is_logged_only_when_captured(caplog: pytest.LogCaptureFixture) -> None:
    ctx = RequestContext.new(10)
    capture_content(ctx, "request", b'{"messages":[{"content":"secret plan"}]}' + b"x" * 10_000)
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        log_request(ctx, method="POST", route="r", status=200, streamed=False)
    line = json.loads(caplog.records[-1].getMessage())
    assert "secret plan" in line["content"]["request"] and len(line["content"]["request"]) == 4096
