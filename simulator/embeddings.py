"""`POST /embeddings`: Azure's input limits and deterministic vectors (see embeddings_math).

Inputs: a string, a list of strings, a token array (list of ints) or a list of token arrays.
Token estimate: ceil(len(text)/4) per string (see tokens.py), one per element of a token array.
Limits enforced like Azure: at most 2048 inputs, at most 8192 tokens per input, at most 300,000
tokens per request, no empty strings. `dimensions` (text-embedding-3 models only) shortens the
vector; `encoding_format` "base64" returns little-endian float32 bytes in base64, as the openai
SDK requests by default.
"""

from __future__ import annotations

import json
from typing import Any

from .embeddings_math import to_base64
from .errors import invalid_request
from .pipeline import Call, JsonOutcome, Outcome
from .tokens import estimate_text

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000


def native_dimensions(model: str) -> int:
    """Vector size of a deployment, guessed from its name as deployments usually keep it."""
    return 3072 if "3-large" in model else 1536


def supports_dimensions(model: str) -> bool:
    return "embedding-3" in model


def _inputs(value: object) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [value]
        if all(isinstance(v, str) or (isinstance(v, list) and all(isinstance(t, int) for t in v)) for v in value):
            return value
    raise invalid_request(
        "'input' must be a non-empty string, array of strings, or array of token arrays", param="input"
    )


def _dimensions(body: dict[str, Any], model: str) -> int:
    native = native_dimensions(model)
    value = body.get("dimensions")
    if value is None:
        return native
    if not supports_dimensions(model):
        raise invalid_request("This model does not support specifying dimensions.", param="dimensions")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= native:
        raise invalid_request(f"'dimensions' must be an integer between 1 and {native}", param="dimensions")
    return value


async def create(call: Call) -> Outcome:
    body = call.body
    model = call.model or ""
    inputs = _inputs(body.get("input"))
    if len(inputs) > MAX_INPUTS:
        raise invalid_request(
            f"Too many inputs. The max number of inputs is {MAX_INPUTS}. We recommend sending multiple requests.",
            param="input",
        )
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid_request("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dims = _dimensions(body, model)
    # An upstream that ignores the asked encoding (allowed for OpenAI-compatible servers), on demand.
    encoding = call.sim.config.embedding_format or encoding

    total = 0
    keys: list[bytes] = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            if not item:
                raise invalid_request(f"'$.input[{index}]' is invalid: empty strings are not allowed.", param="input")
            tokens = estimate_text(item)
            keys.append(item.encode())
        else:
            tokens = len(item)
            if not tokens:
                raise invalid_request(f"'$.input[{index}]' is invalid: empty token arrays.", param="input")
            keys.append(b"\x00tokens:" + ",".join(map(str, item)).encode())
        if tokens > MAX_INPUT_TOKENS:
            raise invalid_request(
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested "
                f"{tokens} tokens in input {index}. Please reduce the length of the input.",
                param="input",
                code="context_length_exceeded",
            )
        total += tokens
    if total > MAX_REQUEST_TOKENS:
        raise invalid_request(
            f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request.",
            param="input",
            code="max_tokens_per_request",
        )
    call.admit(total)

    embedder = call.sim.embedder
    if encoding == "base64":
        encoded = [b'"' + to_base64(v) + b'"' for v in embedder.vectors(model, keys, dims)]
    else:
        encoded = embedder.float_json(model, keys, dims)
    # Hand-built JSON: the vectors are already JSON text, and this is the benchmarked hot path.
    parts = [b'{"object":"embedding","index":%d,"embedding":%s}' % pair for pair in enumerate(encoded)]
    usage = b'{"prompt_tokens":%d,"total_tokens":%d}' % (total, total)
    raw = (
        b'{"object":"list","data":['
        + b",".join(parts)
        + b'],"model":'
        + json.dumps(model).encode()
        + b',"usage":'
        + usage
        + b"}"
    )
    return JsonOutcome(raw=raw)
