"""Batch input lines: what one line must be, and the whole-file check made at upload and by the planner.

A batch input file is JSONL, one request per line, as OpenAI and Azure define it::

    {"custom_id": "req-1", "method": "POST", "url": "/v1/embeddings", "body": {"model": "...", ...}}

A line is refused for the same reasons a request body is (``shared.validation``): a duplicate key
or a key that differs from a judged one only by case would let the gateway judge one reading while
the upstream runs another. Every line of a file must share one ``url`` and one ``model`` (OpenAI and
Azure both require one model per batch), the model must be allowed by the gateway, and a streamed or
background body is refused because a batch line has one JSON answer. Azure's docs write the url
without ``/v1`` (``/chat/completions``); both spellings are accepted and normalised to ``/v1/...``.

Errors use OpenAI's batch error shape ``{code, message, param, line}`` (1-based line numbers), so
the upload can name every bad line at once instead of failing the batch later, as OpenAI does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jiter

from shared.config import Settings, get_settings
from shared.errors import GatewayError
from shared.jobs.embedding_models import is_embedding_model
from shared.validation import refuse_lookalike_keys

EMBEDDINGS, CHAT_COMPLETIONS, RESPONSES = "/v1/embeddings", "/v1/chat/completions", "/v1/responses"
URLS = (EMBEDDINGS, CHAT_COMPLETIONS, RESPONSES)
MAX_CUSTOM_ID_CHARS = 512
# How many bad lines one answer names: enough to fix a file in one go, few enough to read.
MAX_REPORTED_ERRORS = 10
_LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})
_BODY_KEYS = frozenset({"model", "stream", "background"})


class LineError(ValueError):
    """One bad line, in OpenAI's batch error shape."""

    def __init__(self, code: str, message: str, line: int | None, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.line, self.param = code, message, line, param

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One valid line. ``raw_body`` is the body as JSON bytes to send upstream: re-serialised from the
    single reading the checks accepted (no duplicates, no NaN), so it means exactly what was judged."""

    custom_id: str
    url: str
    body: dict[str, Any]
    raw_body: bytes
    model: str


@dataclass(frozen=True, slots=True)
class FileSummary:
    """What a valid batch input file holds: the url and the model its lines share, and how many lines."""

    endpoint: str
    model: str
    lines: int


class FileErrors(ValueError):
    """A file that is not a valid batch input: its first bad lines (at most :data:`MAX_REPORTED_ERRORS`)."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__("; ".join(f"line {e.line}: {e.message}" if e.line else e.message for e in errors))
        self.errors = errors


def normalise_url(url: str) -> str | None:
    """``/v1/embeddings`` or ``/embeddings`` → ``/v1/embeddings``; anything else → None."""
    if url in URLS:
        return url
    prefixed = "/v1" + url
    return prefixed if prefixed in URLS else None


def _parse(raw: bytes, number: int) -> dict[str, Any]:
    """One reading of the line, with the same refusals as a request body (``shared.validation``)."""
    try:
        data = jiter.from_json(raw, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        detail = str(exc)
        if detail.startswith("Detected duplicate key"):
            raise LineError("invalid_json_line", f"The line has a {detail.removeprefix('Detected ')}; send each key "
                            "once (parsers disagree on which copy counts).", number) from None
        raise LineError("invalid_json_line", f"The line is not valid JSON: {detail}.", number) from None
    if not isinstance(data, dict):
        raise LineError("invalid_json_line", "The line must be one JSON object.", number)
    for obj, judged, where in ((data, _LINE_KEYS, ""), (data.get("body"), _BODY_KEYS, "body")):
        if isinstance(obj, dict):
            try:
                refuse_lookalike_keys(obj, judged, where)
            except GatewayError as exc:
                raise LineError("invalid_json_line", exc.message, number, exc.param) from None
    return data


def _required(data: Mapping[str, Any], key: str, number: int, where: str = "") -> Any:
    if key not in data:
        name = f"{where}.{key}" if where else key
        raise LineError("missing_required_parameter", f"Missing required parameter: '{name}'.", number, name)
    return data[key]


def parse_line(raw: bytes, number: int) -> BatchLine:
    """One line checked on its own (``number`` is 1-based); :class:`LineError` names what is wrong.

    What needs the whole file (unique ``custom_id``, one url and one model, the model allowlist) is
    :class:`FileCheck`'s job.
    """
    data = _parse(raw, number)
    custom_id = _required(data, "custom_id", number)
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID_CHARS:
        raise LineError("invalid_custom_id", f"custom_id must be a string of 1 to {MAX_CUSTOM_ID_CHARS} "
                        "characters.", number, "custom_id")
    method = _required(data, "method", number)
    if method != "POST":
        raise LineError("invalid_method", "method must be \"POST\".", number, "method")
    url = _required(data, "url", number)
    normalised = normalise_url(url) if isinstance(url, str) else None
    if normalised is None:
        raise LineError("invalid_url", f"url must be one of {', '.join(URLS)} (or the same without /v1).",
                        number, "url")
    body = _required(data, "body", number)
    if not isinstance(body, dict):
        raise LineError("invalid_body", "body must be a JSON object.", number, "body")
    model = _required(body, "model", number, "body")
    if not isinstance(model, str) or not model:
        raise LineError("invalid_body", "body.model must be a non-empty string.", number, "body.model")
    for flag in ("stream", "background"):
        if body.get(flag) is True:
            raise LineError("invalid_body", f"body.{flag} cannot be true in a batch: each line gets one JSON answer.",
                            number, f"body.{flag}")
    raw_body = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return BatchLine(custom_id=custom_id, url=normalised, body=body, raw_body=raw_body, model=model)


def check_model(model: str, url: str, settings: Settings, number: int) -> None:
    """The model is one the gateway allows, and an embedding model for an embeddings batch."""
    deployment = settings.models.get(model)
    if deployment is None:
        raise LineError("model_not_found", f"The model '{model[:256]}' does not exist or is not allowed by this "
                        "gateway (OPENAI_MODELS).", number, "body.model")
    if url == EMBEDDINGS and not is_embedding_model(model, deployment, settings):
        raise LineError("model_not_embedding", f"The model '{model[:256]}' is not an embedding model, so it cannot "
                        "serve /v1/embeddings lines (see EMBEDDING_JOBS_MODELS).", number, "body.model")


@dataclass(slots=True)
class FileCheck:
    """The whole-file check, fed a piece at a time (memory: one line, plus 16 bytes per ``custom_id``).

    ``feed`` takes bytes as they arrive (an upload, a blob download); ``finish`` returns the
    :class:`FileSummary` or raises :class:`FileErrors` with the first bad lines. Lines end with
    ``\\n`` (``\\r\\n`` too); one blank line at the end is allowed, a blank line in between is not.
    """

    settings: Settings = field(default_factory=get_settings)
    errors: list[LineError] = field(default_factory=list)
    lines: int = 0
    endpoint: str | None = None
    model: str | None = None
    _pending: bytearray = field(default_factory=bytearray)
    _seen: dict[bytes, int] = field(default_factory=dict)
    _blank_at: int | None = None
    _physical: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def feed(self, data: bytes) -> None:
        self._pending += data
        start = 0
        while (end := self._pending.find(b"\n", start)) != -1:
            self._line(bytes(self._pending[start:end]))
            start = end + 1
        del self._pending[:start]

    def finish(self) -> FileSummary:
        if self._pending:
            self._line(bytes(self._pending))
            self._pending.clear()
        if self.lines == 0 and not self.errors:
            self._error(LineError("empty_file", "The file has no lines; a batch input needs at least one request.",
                                  None))
        if self.errors:
            raise FileErrors(self.errors)
        assert self.endpoint is not None and self.model is not None
        return FileSummary(self.endpoint, self.model, self.lines)

    def _error(self, error: LineError) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)

    def _line(self, raw: bytes) -> None:
        self._physical += 1
        number = self._physical
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            if self._blank_at is None:
                self._blank_at = number  # fine at the end of the file, refused if a request follows
            return
        if self._blank_at is not None:
            self._error(LineError("invalid_json_line", "Blank line inside the file; only the end of the file may "
                                  "be blank.", self._blank_at))
            self._blank_at = None
        self.lines += 1
        if self.lines > self.settings.batch_max_lines:
            if self.lines == self.settings.batch_max_lines + 1:
                self._error(LineError("too_many_lines", f"The file has more than {self.settings.batch_max_lines} "
                                      "lines (BATCH_MAX_LINES); split it into several batches.", number))
            return
        try:
            self._check(raw, number)
        except LineError as exc:
            self._error(exc)

    def _check(self, raw: bytes, number: int) -> None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LineError("invalid_json_line", "The line is not UTF-8.", number) from None
        line = parse_line(raw, number)
        digest = hashlib.blake2b(line.custom_id.encode(), digest_size=16).digest()
        first = self._seen.setdefault(digest, number)
        if first != number:
            raise LineError("duplicate_custom_id", f"custom_id {line.custom_id[:80]!r} is used twice (first on line "
                            f"{first}); each line needs its own.", number, "custom_id")
        if self.endpoint is None:
            self.endpoint = line.url
        elif line.url != self.endpoint:
            raise LineError("mismatched_url", f"Every line must use the same url: this one is {line.url}, the "
                            f"file's is {self.endpoint}.", number, "url")
        if self.model is None:
            check_model(line.model, line.url, self.settings, number)
            self.model = line.model
        elif line.model != self.model:
            raise LineError("mismatched_model", f"Every line must use the same model: this one is "
                            f"{line.model[:256]!r}, the file's is {self.model[:256]!r}.", number, "body.model")


async def check_file(chunks: AsyncIterable[bytes], settings: Settings | None = None) -> FileSummary:
    """Check a whole file streamed in pieces (a blob download); :class:`FileErrors` when it is not valid."""
    check = FileCheck(settings or get_settings())
    async for piece in chunks:
        check.feed(piece)
    return check.finish()


__all__ = ["BatchLine", "FileCheck", "FileErrors", "FileSummary", "LineError", "check_file", "check_model",
           "normalise_url", "parse_line"]
