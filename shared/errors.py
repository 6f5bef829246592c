"""OpenAI-shaped errors.

Every failure the gateway reports itself uses OpenAI's error body, so the official SDKs raise their
usual typed exceptions (``BadRequestError``, ``NotFoundError``, ``RateLimitError`` ...) for our errors
exactly as for upstream ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class GatewayError(Exception):
    """An error the gateway answers itself, with an HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        return error_dict(self.message, type=self.type, param=self.param, code=self.code)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()


def error_dict(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def unprocessable(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(422, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(404, message, param=param, code=code)


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> GatewayError:
    return GatewayError(
        405,
        f"Method {method} is not allowed here; use {', '.join(allowed)}.",
        code="method_not_allowed",
        headers={"allow": ", ".join(allowed)},
    )


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"Request body is larger than the gateway's limit of {limit} bytes (MAX_REQUEST_BYTES).",
        code="request_too_large",
    )


def upstream_unreachable(detail: str) -> GatewayError:
    return GatewayError(
        502,
        f"The gateway could not reach the Azure OpenAI upstream: {detail}",
        type="server_error",
        code="upstream_unreachable",
    )


def upstream_timeout(detail: str) -> GatewayError:
    return GatewayError(
        504,
        f"The Azure OpenAI upstream did not answer in time: {detail}",
        type="server_error",
        code="upstream_timeout",
    )


def upstream_auth_failed(status: int, detail: str) -> GatewayError:
    """The upstream refused the gateway's own credentials: a gateway-side fault (502), never the
    caller's (whose key is not sent upstream); the usual cause is a role assignment still propagating."""
    return GatewayError(
        502,
        f"Azure OpenAI refused the gateway's own credentials ({status}): {detail} -- Check that the gateway's "
        "managed identity has the 'Cognitive Services OpenAI User' role on the Azure OpenAI account (a new "
        "role assignment can take several minutes to apply after `azd up`), or that AZURE_OPENAI_API_KEY "
        "is valid. Your own key was not sent upstream.",
        type="server_error",
        code="upstream_auth_failed",
    )


def internal_error() -> GatewayError:
    return GatewayError(
        500,
        "The gateway failed while handling this request; the request id identifies it in the logs.",
        type="server_error",
        code="internal_error",
    )


def sse_error_event(error: GatewayError) -> bytes:
    """A server-sent event that ends a stream with an error.

    Both SSE flavours are covered: Chat Completions clients look for an ``error`` key in the data,
    Responses clients for an ``error`` event; the official SDKs raise ``APIError`` on either.
    """
    payload = {"type": "error", **error.to_dict(), "code": error.code, "message": error.message, "param": error.param}
    return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"
