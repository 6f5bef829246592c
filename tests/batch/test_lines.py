"""Batch input lines: one line on its own (``parse_line``) and a whole file (``FileCheck``, ``check_file``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.batch.lines import (
    MAX_REPORTED_ERRORS,
    FileCheck,
    FileErrors,
    LineError,
    check_file,
    parse_line,
)
from shared.config import Settings, parse_models

SETTINGS = Settings(upstream_base_url="http://upstream.test/v1/",
                    models=parse_models("gpt-4o-mini,text-embedding-3-small,embed=text-embedding-3-small"),
                    batch_max_lines=50)


def line(custom_id: str = "r1", url: str = "/v1/embeddings", model: str = "text-embedding-3-small",
         **body: Any) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url,
                       "body": {"model": model, "input": "hello", **body}}).encode()


def refused(raw: bytes, number: int = 3) -> LineError:
    with pytest.raises(LineError) as caught:
        parse_line(raw, number)
    assert caught.value.line == number
    return caught.value


def check(*lines: bytes, settings: Settings = SETTINGS, pieces: int = 7) -> FileCheck:
    """Feed the file in awkward pieces (a line split across them), as a network stream arrives."""
    data = b"\n".join(lines)
    checker = FileCheck(settings)
    for start in range(0, len(data), pieces):
        checker.feed(data[start:start + pieces])
    return checker


def errors_of(checker: FileCheck) -> list[dict[str, Any]]:
    with pytest.raises(FileErrors) as caught:
        checker.finish()
    return [error.to_dict() for error in caught.value.errors]


def test_a_valid_line_and_its_normalised_url() -> None:
    parsed = parse_line(line(url="/embeddings", dimensions=256), 1)
    assert (parsed.custom_id, parsed.url, parsed.model) == ("r1", "/v1/embeddings", "text-embedding-3-small")
    assert json.loads(parsed.raw_body) == {"model": "text-embedding-3-small", "input": "hello", "dimensions": 256}
    assert parse_line(line(url="/chat/completions", model="gpt-4o-mini"), 1).url == "/v1/chat/completions"
    assert parse_line(line(url="/v1/responses", model="gpt-4o-mini"), 1).url == "/v1/responses"


@pytest.mark.parametrize(("raw", "code", "param"), [
    (b"not json", "invalid_json_line", None),
    (b"[1, 2]", "invalid_json_line", None),
    (b'{"custom_id": "a", "custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {}}',
     "invalid_json_line", None),
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "\\u006dodel": "n"}}',
     "invalid_json_line", None),
    (b'{"custom_id": "a", "Custom_ID": "b", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}',
     "invalid_json_line", "Custom_ID"),
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "Stream": true}}',
     "invalid_json_line", "body.Stream"),
    (b'{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "x": NaN}}',
     "invalid_json_line", None),
    (b'{"method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}', "missing_required_parameter",
     "custom_id"),
    (line(custom_id=""), "invalid_custom_id", "custom_id"),
    (line(custom_id="x" * 513), "invalid_custom_id", "custom_id"),
    (json.dumps({"custom_id": 7, "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}).encode(),
     "invalid_custom_id", "custom_id"),
    (json.dumps({"custom_id": "a", "method": "GET", "url": "/v1/embeddings", "body": {"model": "m"}}).encode(),
     "invalid_method", "method"),
    (line(url="/v1/completions"), "invalid_url", "url"),
    (line(url="/v1/../v1/embeddings"), "invalid_url", "url"),
    (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": "x"}).encode(),
     "invalid_body", "body"),
    (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}).encode(),
     "missing_required_parameter", "body.model"),
    (line(model=""), "invalid_body", "body.model"),
    (line(url="/v1/chat/completions", model="gpt-4o-mini", stream=True), "invalid_body", "body.stream"),
    (line(url="/v1/responses", model="gpt-4o-mini", background=True), "invalid_body", "body.background"),
])
def test_a_bad_line_is_refused_with_its_number_code_and_param(raw: bytes, code: str, param: str | None) -> None:
    error = refused(raw)
    assert (error.code, error.param) == (code, param), error.message
    assert error.to_dict() == {"code": code, "message": error.message, "param": param, "line": 3}


def test_stream_false_and_a_512_character_custom_id_are_fine() -> None:
    assert parse_line(line(custom_id="x" * 512, url="/v1/chat/completions", model="gpt-4o-mini", stream=False),
                      1).custom_id == "x" * 512


def test_a_valid_file_is_summarised_and_a_trailing_blank_line_is_allowed() -> None:
    lines = [line(custom_id=f"r{i}", model="embed") for i in range(1, 6)]
    summary = check(*lines, b"", b"").finish()
    assert (summary.endpoint, summary.model, summary.lines) == ("/v1/embeddings", "embed", 5)
    crlf = FileCheck(SETTINGS)
    crlf.feed(b"\r\n".join(lines) + b"\r\n")
    assert crlf.finish().lines == 5


def test_whole_file_rules_name_each_bad_line() -> None:
    errors = errors_of(check(
        line(custom_id="a"),
        line(custom_id="a"),  # duplicate
        line(custom_id="b", url="/v1/chat/completions", model="gpt-4o-mini"),  # another url
        line(custom_id="c", model="embed"),  # another model (even an alias of the same deployment)
        b"",  # a blank line before more requests
        line(custom_id="d"),
        b"\xff\xfe not utf-8",
    ))
    assert [(e["line"], e["code"]) for e in errors] == [
        (2, "duplicate_custom_id"), (3, "mismatched_url"), (4, "mismatched_model"), (5, "invalid_json_line"),
        (7, "invalid_json_line")]
    assert "first on line 1" in errors[0]["message"]


@pytest.mark.parametrize(("url", "model", "code"), [
    ("/v1/embeddings", "gpt-4.1", "model_not_found"),
    ("/v1/embeddings", "gpt-4o-mini", "model_not_embedding"),
    ("/v1/chat/completions", "not-allowed", "model_not_found"),
])
def test_the_model_must_be_allowed_and_fit_the_url(url: str, model: str, code: str) -> None:
    errors = errors_of(check(line(url=url, model=model)))
    assert [(e["line"], e["code"], e["param"]) for e in errors] == [(1, code, "body.model")]


def test_empty_files_are_refused() -> None:
    for data in (b"", b"\n", b"  \n\n"):
        checker = FileCheck(SETTINGS)
        checker.feed(data)
        assert [e["code"] for e in errors_of(checker)] == ["empty_file"]


def test_at_most_batch_max_lines_and_at_most_ten_errors_reported() -> None:
    too_many = check(*(line(custom_id=f"r{i}") for i in range(51)))
    assert [(e["line"], e["code"]) for e in errors_of(too_many)] == [(51, "too_many_lines")]
    many_bad = check(*(b"{" for _ in range(30)))
    errors = errors_of(many_bad)
    assert len(errors) == MAX_REPORTED_ERRORS and [e["line"] for e in errors] == list(range(1, 11))


async def test_check_file_reads_a_stream() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield line(custom_id="a")[:10]
        yield line(custom_id="a")[10:] + b"\n" + line(custom_id="b")

    summary = await check_file(pieces(), SETTINGS)
    assert summary.lines == 2
