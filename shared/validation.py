"""Turn a raw request body into a validated request, or an OpenAI-shaped error.

The gateway forwards the caller's bytes, so every check must hold for the value the upstream will
read. JSON that parsers read differently is refused here rather than normalised: duplicate keys (one
parser keeps the first, another the last), keys that differ from a judged field only by case, and
the non-standard ``NaN``/``Infinity``. What remains has one reading, so the original bytes are safe
to forward and cost nothing to keep.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TypeVar

import jiter
from pydantic import BaseModel, ValidationError

from shared.config import Settings
from shared.errors import (
    GatewayError,
    invalid_json,
    invalid_value,
    missing_parameter,
    model_not_found,
    too_many_inputs,
)
from shared.request_models import MAX_EMBEDDING_INPUTS, EmbeddingsRequest

M = TypeVar("M", bound=BaseModel)


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _parse_json(raw: bytes) -> Any:
    """One reading of the body: UTF-8 only, no duplicate keys at any depth, no NaN/Infinity."""
    try:
        return jiter.from_json(raw, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        detail = str(exc)
        if detail.startswith("Detected duplicate key"):
            raise invalid_json(f"The request body has a {detail.removeprefix('Detected ')}; send each key once "
                               "(parsers disagree on which copy counts).") from None
        raise invalid_json(f"The request body is not valid JSON: {detail}.") from None


def fold_key(key: str) -> str:
    """A key as a case-insensitive, Unicode-compatibility-folding parser would read it."""
    return (key if key.isascii() else unicodedata.normalize("NFKC", key)).casefold()


def refuse_lookalike_keys(obj: Mapping[str, Any], judged: frozenset[str], where: str = "") -> None:
    """Refuse a key that differs from a field the gateway judges only by case or Unicode form.

    An upstream that binds fields case-insensitively would act on ``Server_URL`` while the gateway
    judged ``server_url``; no valid request spells them that way, so there is nothing to guess.
    """
    for key in obj:
        if key not in judged and fold_key(key) in judged:
            param = f"{where}.{key}" if where else key
            raise invalid_json(f"Ambiguous key {key!r}: this gateway only accepts {fold_key(key)!r} spelled exactly "
                               "(a duplicate key up to case).", param=param)


@lru_cache(maxsize=32)
def _judged_fields(schema: type[BaseModel]) -> frozenset[str]:
    """The top-level names the schema acts on (its declared fields and their aliases)."""
    return frozenset(name for key, info in schema.model_fields.items() for name in (key, info.alias) if name)


def parse_body(raw: bytes, schema: type[M]) -> M:
    """Parse once (jiter, with duplicate-key detection) and validate, mapping failures to 400/422."""
    if not raw.strip():
        raise invalid_json("The request body is empty; send a JSON object.")
    data = _parse_json(raw)
    if isinstance(data, dict):
        refuse_lookalike_keys(data, _judged_fields(schema))
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        kind = first["type"]
        param = _param(first["loc"]) or None
        if kind == "model_type":
            raise invalid_json("The request body must be a JSON object.") from None
        if kind == "missing":
            raise missing_parameter(param) from None
        raise invalid_value(param, first["msg"]) from None


def resolve_model(name: str, settings: Settings) -> str:
    """Map the caller's model (deployment name or alias) to an allowed deployment."""
    deployment = settings.models.get(name)
    if deployment is None:
        raise model_not_found(name)
    return deployment


def check_embedding_inputs(request: EmbeddingsRequest) -> None:
    """At most 2048 inputs per request, as the API documents: refused here, before any upstream call.

    A flat list of integers is one tokenised input, not many.
    """
    inputs = request.input
    if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) and len(inputs) > MAX_EMBEDDING_INPUTS:
        raise too_many_inputs(MAX_EMBEDDING_INPUTS, len(inputs))


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _not_an_object() -> GatewayError:
    return invalid_json("The request body must be one JSON object.")


def _members(text: str) -> list[tuple[str, str]]:
    """The top-level members of a JSON object as (decoded key, original ``"key": value`` text).

    Keys and values are delimited by the standard library's own scanner; values are parsed only to
    find where they end, and their text is kept as sent.
    """
    def skip(at: int) -> int:
        match = _WHITESPACE.match(text, at)
        return match.end() if match else at

    members: list[tuple[str, str]] = []
    try:
        at = skip(0)
        if text[at:at + 1] != "{":
            raise _not_an_object()
        at = skip(at + 1)
        if text[at:at + 1] == "}":
            at += 1
        else:
            while True:
                if text[at:at + 1] != '"':
                    raise _not_an_object()
                start = at
                key, at = _DECODER.raw_decode(text, at)  # a JSON string: the key, unescaped
                at = skip(at)
                if text[at:at + 1] != ":":
                    raise _not_an_object()
                _, at = _DECODER.raw_decode(text, skip(at + 1))
                members.append((key, text[start:at]))
                at = skip(at)
                if text[at:at + 1] == "}":
                    at += 1
                    break
                if text[at:at + 1] != ",":
                    raise _not_an_object()
                at = skip(at + 1)
    except json.JSONDecodeError:
        raise _not_an_object() from None
    if skip(at) != len(text):
        raise _not_an_object()
    return members


def with_fields(raw: bytes, fields: Mapping[str, object]) -> bytes:
    """The body with top-level ``fields`` set (replaced in place, or added at the end).

    Everything else is kept byte for byte (numbers such as ``1e400``, ``-0`` or big integers, string
    escapes, key order), and no second copy of a set field survives, however its key was escaped or
    cased.
    The one place that rewrites a caller's body (aliases, usage requests); the common path forwards
    the original bytes untouched.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_an_object() from None
    # A caller's "Stream_Options" next to the gateway's "stream_options" would be a duplicate to an
    # upstream that matches keys case-insensitively: lookalikes of a set field go too.
    targets = {fold_key(key): key for key in fields}
    out: list[str] = []
    written: set[str] = set()
    for key, member in _members(text):
        target = targets.get(fold_key(key))
        if target is None:
            out.append(member)
        elif target not in written:
            out.append(_member(target, fields[target]))
            written.add(target)
    out.extend(_member(key, value) for key, value in fields.items() if key not in written)
    return ("{" + ",".join(out) + "}").encode()


def _member(key: str, value: object) -> str:
    try:
        return json.dumps(key) + ":" + json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a value merged from the caller's body held a number beyond float range (1e400)
        raise invalid_value(key, "a number is out of range") from None


def with_model(raw: bytes, deployment: str) -> bytes:
    """The body with ``model`` replaced; only called for aliases, so the common path forwards bytes as-is."""
    return with_fields(raw, {"model": deployment})
