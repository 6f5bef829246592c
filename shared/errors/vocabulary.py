"""Every answer the gateway gives on failure, and its wire shape (JSON body and SSE error event).

Read top to bottom: ``VOCABULARY`` lists each ``code`` a caller can receive with its HTTP status and
OpenAI ``type`` (the README's "Errors" table lists the same codes, and a test keeps them equal); the
builders below it are the only place an error's message and headers are written. Errors use OpenAI's
body, ``{"error": {"message", "type", "param", "code"}}``, so the official SDKs raise their usual typed
exceptions (``BadRequestError``, ``NotFoundError``, ``RateLimitError`` ...) for the gateway's own
errors exactly as for upstream ones. An upstream's error response is translated into this vocabulary
by :mod:`shared.errors.upstream`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from shared.upstream_http import UpstreamResponse

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
PERMISSION = "permission_error"
RATE_LIMIT = "rate_limit_error"
SERVER = "server_error"


@dataclass(frozen=True, slots=True)
class Kind:
    """The HTTP status and OpenAI error ``type`` that go with one ``code``."""

    status: int
    type: str


VOCABULARY: Final[Mapping[str, Kind]] = {
    # The request itself (400/404/405/409/413/422).
    "invalid_json": Kind(400, INVALID_REQUEST),
    "missing_required_parameter": Kind(400, INVALID_REQUEST),
    "invalid_value": Kind(422, INVALID_REQUEST),
    "unknown_parameter": Kind(400, INVALID_REQUEST),
    "invalid_query_parameter": Kind(400, INVALID_REQUEST),
    "mcp_server_not_allowed": Kind(400, INVALID_REQUEST),
    "array_above_max_length": Kind(400, INVALID_REQUEST),
    "max_output_tokens_required": Kind(400, INVALID_REQUEST),
    "caller_token_limit_too_small": Kind(400, INVALID_REQUEST),
    "model_not_embedding": Kind(400, INVALID_REQUEST),
    "model_not_allowed": Kind(400, INVALID_REQUEST),
    "invalid_batch_endpoint": Kind(400, INVALID_REQUEST),
    "invalid_completion_window": Kind(400, INVALID_REQUEST),
    "invalid_file_purpose": Kind(400, INVALID_REQUEST),
    "invalid_multipart": Kind(400, INVALID_REQUEST),
    "invalid_batch_file": Kind(400, INVALID_REQUEST),
    "model_not_found": Kind(404, INVALID_REQUEST),
    "file_not_found": Kind(404, INVALID_REQUEST),
    "not_found": Kind(404, INVALID_REQUEST),
    "previous_response_not_found": Kind(404, INVALID_REQUEST),
    "job_not_found": Kind(404, INVALID_REQUEST),
    "batch_not_found": Kind(404, INVALID_REQUEST),
    "method_not_allowed": Kind(405, INVALID_REQUEST),
    "job_not_succeeded": Kind(409, INVALID_REQUEST),
    "job_not_cancellable": Kind(409, INVALID_REQUEST),
    "batch_not_cancellable": Kind(409, INVALID_REQUEST),
    "request_too_large": Kind(413, INVALID_REQUEST),
    "file_too_large": Kind(413, INVALID_REQUEST),
    # Who is calling, and how much (401/403/429).
    "ambiguous_function_key": Kind(401, AUTHENTICATION),
    "origin_not_allowed": Kind(403, INVALID_REQUEST),
    "caller_token_limit_exceeded": Kind(429, RATE_LIMIT),
    "rate_limit_exceeded": Kind(429, RATE_LIMIT),
    # The gateway or what it depends on (5xx).
    "internal_error": Kind(500, SERVER),
    "configuration_error": Kind(500, SERVER),
    "upstream_auth_failed": Kind(502, SERVER),
    "upstream_unreachable": Kind(502, SERVER),
    "upstream_stream_incomplete": Kind(502, SERVER),
    "ownership_unavailable": Kind(503, SERVER),
    "storage_unavailable": Kind(503, SERVER),
    "upstream_timeout": Kind(504, SERVER),
}


class GatewayError(Exception):
    """Answer the caller with this: an HTTP status, OpenAI's error fields and any headers.

    ``body`` is set only for an upstream's error relayed with fields of its own (kept byte for byte);
    otherwise the body is built from the four fields.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return error_dict(self.message, type=self.type, param=self.param, code=self.code)

    def to_json(self) -> bytes:
        """The JSON body of the reply."""
        return self.body if self.body is not None else json.dumps(self.to_dict()).encode()


class UpstreamError(Exception):
    """The upstream answered with an error status (after retries).

    Kept apart from :class:`GatewayError` because the code that sent the request still needs the raw
    response (the job pacer reads its rate-limit headers, metering its status) and must not mistake it
    for a refusal of the gateway's own; :func:`shared.errors.upstream.upstream_error` turns it into
    the caller's answer at the edge.
    """

    def __init__(self, response: UpstreamResponse) -> None:
        super().__init__(f"upstream answered {response.status_code}")
        self.response = response


def error_dict(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def sse_error_event(error: GatewayError) -> bytes:
    """A server-sent event that ends a stream with an error.

    Both SSE flavours are covered: Chat Completions clients look for an ``error`` key in the data,
    Responses clients for an ``error`` event; the official SDKs raise ``APIError`` on either.
    """
    payload = {"type": "error", **error.to_dict(), "code": error.code, "message": error.message, "param": error.param}
    return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"


def _answer(code: str, message: str, *, param: str | None = None,
            headers: Mapping[str, str] | None = None) -> GatewayError:
    """The error for ``code``, with the status and type the vocabulary gives it."""
    kind = VOCABULARY[code]
    return GatewayError(kind.status, message, type=kind.type, param=param, code=code, headers=headers)


def _retry_hints(seconds: float) -> dict[str, str]:
    """``retry-after`` (whole seconds, at least 1) and ``retry-after-ms``, as OpenAI's 429s carry them."""
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(math.ceil(seconds * 1000))}


# Generic builders, for call sites that pass a code from the vocabulary.

def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def unprocessable(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(422, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(404, message, param=param, code=code)


# The request itself.

def invalid_json(message: str, *, param: str | None = None) -> GatewayError:
    return _answer("invalid_json", message, param=param)


def missing_parameter(param: str | None) -> GatewayError:
    return _answer("missing_required_parameter", f"Missing required parameter: '{param}'.", param=param)


def invalid_value(param: str | None, detail: str) -> GatewayError:
    return _answer("invalid_value", f"Invalid value for '{param}': {detail}.", param=param)


def unknown_parameter(name: str, accepted: tuple[str, ...]) -> GatewayError:
    """A query parameter the route does not take: refused, never relayed unchecked nor dropped."""
    known = ", ".join(accepted) if accepted else "none"
    return _answer("unknown_parameter", f"Unknown query parameter: '{name}'. This route accepts: {known}.",
                   param=name)


def invalid_query_parameter(name: str | None, detail: str) -> GatewayError:
    return _answer("invalid_query_parameter", f"Invalid query parameter '{name}': {detail}."
                   if name else f"Invalid query string: {detail}.", param=name)


def too_many_inputs(limit: int, count: int) -> GatewayError:
    return _answer("array_above_max_length", f"Invalid 'input': array too long. Expected at most {limit} inputs, "
                   f"got {count}; use /v1/embeddings/jobs for more.", param="input")


def mcp_server_not_allowed(what: object, param: str) -> GatewayError:
    return _answer("mcp_server_not_allowed",
                   f"MCP server {what!r} is not allowed by this gateway (MCP_ALLOWED_SERVERS).", param=param)


def model_not_found(name: str) -> GatewayError:
    return _answer("model_not_found",
                   f"The model '{name}' does not exist or is not allowed by this gateway (OPENAI_MODELS).",
                   param="model")


def max_output_tokens_required() -> GatewayError:
    """A background response generates after the reply: only a cap bounds what it can cost the caller."""
    return _answer("max_output_tokens_required", "A background response must set max_output_tokens while "
                   "per-caller token limits are on (CALLER_TOKENS_PER_MINUTE).", param="max_output_tokens")


def job_not_found(job_id: str) -> GatewayError:
    """One answer for "no such job" and "not yours", so ids of other callers' jobs reveal nothing."""
    return _answer("job_not_found", f"No embedding job with id {job_id[:80]!r}.", param="id")


def job_not_succeeded(status: str, detail: str) -> GatewayError:
    return _answer("job_not_succeeded", f"The job is {status}, it has no results{detail}.")


def model_not_embedding(model: str) -> GatewayError:
    return _answer("model_not_embedding", f"The model '{model[:256]}' is not an embedding model, so it cannot run "
                   "an embedding job (see EMBEDDING_JOBS_MODELS).", param="model")


def job_not_cancellable(status: str) -> GatewayError:
    return _answer("job_not_cancellable",
                   f"The job has already {status}; only a queued or running job can be cancelled.")


def batch_not_found(batch_id: str) -> GatewayError:
    """One answer for "no such batch" and "not yours", so ids of other callers' batches reveal nothing."""
    return _answer("batch_not_found", f"No batch with id {batch_id[:80]!r} was found.", param="batch_id")


def batch_not_cancellable(status: str) -> GatewayError:
    """OpenAI answers 409 for cancelling a batch that has already ended; so does the gateway."""
    return _answer("batch_not_cancellable", f"Cannot cancel a batch with status {status!r}.")


def invalid_batch_endpoint(detail: str) -> GatewayError:
    return _answer("invalid_batch_endpoint", detail, param="endpoint")


def invalid_completion_window(value: str) -> GatewayError:
    return _answer("invalid_completion_window", f"Invalid completion_window {value[:40]!r}: only '24h' is "
                   "supported.", param="completion_window")


def invalid_file_purpose(purpose: object, expected: str, param: str) -> GatewayError:
    return _answer("invalid_file_purpose", f"The file has purpose {purpose!r}; it must have purpose "
                   f"{expected!r}.", param=param)


def model_not_allowed(model: str, param: str) -> GatewayError:
    """A stored request names a model the gateway no longer allows (OPENAI_MODELS changed since)."""
    return _answer("model_not_allowed", f"The model '{model[:256]}' is not allowed by this gateway "
                   "(OPENAI_MODELS).", param=param)


def response_not_found(response_id: str, *, param: str = "response_id", code: str = "not_found") -> GatewayError:
    """The answer for another caller's response and for one that does not exist: the same bytes."""
    return _answer(code, f"No response with id {response_id!r} was found.", param=param)


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> GatewayError:
    return _answer("method_not_allowed", f"Method {method} is not allowed here; use {', '.join(allowed)}.",
                   headers={"allow": ", ".join(allowed)})


def too_large(limit: int, setting: str = "MAX_REQUEST_BYTES") -> GatewayError:
    return _answer("request_too_large",
                   f"Request body is larger than the gateway's limit of {limit} bytes ({setting}).")


# Batch input files (POST /v1/files and the file routes).

def file_not_found(file_id: str, *, param: str = "file_id") -> GatewayError:
    """One answer for "no such file", "expired" and "not yours", so other callers' file ids reveal nothing."""
    return _answer("file_not_found", f"No file with id {file_id[:80]!r} was found.", param=param)


def invalid_multipart(detail: str, *, param: str | None = None) -> GatewayError:
    """An upload form that is not multipart/form-data, is malformed, or is ambiguous (a field twice)."""
    return _answer("invalid_multipart", f"Invalid upload form: {detail}", param=param)


def file_too_large(limit: int) -> GatewayError:
    return _answer("file_too_large", f"The file is larger than this gateway's limit of {limit} bytes "
                   "(FILES_MAX_BYTES); split the requests into several files and batches.", param="file")


def invalid_batch_file(errors: list[dict[str, Any]]) -> GatewayError:
    """A batch input file with bad lines: the first of them in the message, all those found (at most
    ten) under ``error.errors`` in the shape of a Batch's ``errors`` (``{object: list, data}``)."""
    first = errors[0]
    where = f"Line {first['line']}: " if first.get("line") else ""
    more = f" ({len(errors) - 1} more bad line(s) listed in error.errors)" if len(errors) > 1 else ""
    error = _answer("invalid_batch_file", f"The file is not a valid batch input. {where}{first['message']}{more}",
                    param="file")
    payload = error.to_dict()
    payload["error"]["errors"] = {"object": "list", "data": errors}
    error.body = json.dumps(payload, ensure_ascii=False).encode()
    return error


# Who is calling, and how much.

def ambiguous_key(detail: str) -> GatewayError:
    return _answer("ambiguous_function_key", f"Ambiguous function key: {detail}. Send exactly one key, in the "
                   "x-functions-key header or a single 'code' query parameter.")


def origin_not_allowed(origin: str) -> GatewayError:
    return _answer("origin_not_allowed", f"Origin {origin!r} is not allowed (CORS_ALLOWED_ORIGINS).")


def caller_limit_too_small(tokens: int, limit: int) -> GatewayError:
    return _answer("caller_token_limit_too_small", f"This request needs about {tokens} tokens, more than the "
                   f"caller limit of {limit} tokens per minute.")


def caller_over_limit(limit: int, retry_after: float) -> GatewayError:
    seconds = max(1, math.ceil(retry_after))
    return _answer("caller_token_limit_exceeded",
                   f"This caller has used its {limit} tokens per minute; retry after {seconds} s.",
                   headers={**_retry_hints(retry_after), "x-caller-ratelimit-limit-tokens": str(limit),
                            "x-caller-ratelimit-remaining-tokens": "0"})


def rate_limited(seconds: float) -> GatewayError:
    """Every upstream deployment for the model is throttled for longer than the gateway may wait."""
    ms = math.ceil(seconds * 1000)
    return _answer("rate_limit_exceeded", f"Every upstream deployment for this model is rate limited; retry after "
                   f"{ms / 1000:.1f} s.", headers=_retry_hints(seconds))


# The gateway, or what it depends on.

def internal_error() -> GatewayError:
    return _answer("internal_error",
                   "The gateway failed while handling this request; the request id identifies it in the logs.")


def misconfigured(detail: object) -> GatewayError:
    return _answer("configuration_error", f"The gateway is misconfigured: {detail}")


def upstream_unreachable(detail: str) -> GatewayError:
    return _answer("upstream_unreachable", f"The gateway could not reach the Azure OpenAI upstream: {detail}")


def upstream_timeout(detail: str) -> GatewayError:
    return _answer("upstream_timeout", f"The Azure OpenAI upstream did not answer in time: {detail}")


def upstream_auth_failed(status: int, detail: str) -> GatewayError:
    """The upstream refused the gateway's own credentials: a gateway-side fault (502), never the
    caller's (whose key is not sent upstream); the usual cause is a role assignment still propagating."""
    return _answer(
        "upstream_auth_failed",
        f"Azure OpenAI refused the gateway's own credentials ({status}): {detail} -- Check that the gateway's "
        "managed identity has the 'Cognitive Services OpenAI User' role on the Azure OpenAI account (a new "
        "role assignment can take several minutes to apply after `azd up`), or that AZURE_OPENAI_API_KEY "
        "is valid. Your own key was not sent upstream.",
    )


def gateway_credential_unavailable(detail: str) -> GatewayError:
    """The gateway could not get its own Entra ID token for Azure OpenAI: a gateway-side fault (502)."""
    return _answer(
        "upstream_auth_failed",
        f"The gateway could not get its Entra ID token for Azure OpenAI: {detail} -- In Azure, check that "
        "the app has its user-assigned managed identity and that AZURE_CLIENT_ID is that identity's client "
        "id; locally, sign in with `az login` (or `azd auth login`), or set AZURE_OPENAI_API_KEY.",
    )


def stream_incomplete() -> GatewayError:
    return _answer("upstream_stream_incomplete", "The upstream ended the stream before its final event ([DONE] "
                   "or response.completed): the output is incomplete.")


def ownership_unavailable(seconds: int) -> GatewayError:
    return _answer("ownership_unavailable", f"The gateway cannot check who owns stored responses right now "
                   f"(storage unavailable); retry after {seconds} s.",
                   headers={"retry-after": str(seconds), "retry-after-ms": str(seconds * 1000)})


def job_storage_unavailable(seconds: int) -> GatewayError:
    return _answer("storage_unavailable", f"Job storage is unavailable right now; retry after {seconds} s. "
                   "The request id identifies this failure in the logs.", headers={"retry-after": str(seconds)})
