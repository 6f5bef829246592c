"""Error bodies in the two shapes clients meet on Azure OpenAI v1.

Azure's front door (auth, deployment lookup, throttling) answers ``{"error": {"code", "message"}}``
while the model service answers OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
Gateways parse both, so the simulator reproduces each where Azure uses it.
"""

from __future__ import annotations

import math
from typing import Any


class ApiError(Exception):
    """An HTTP error reply; raised anywhere in request handling and rendered by the pipeline."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def invalid_request(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> ApiError:
    """OpenAI-shaped validation error."""
    return ApiError(
        status,
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}},
    )


def azure_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    """Azure front-door-shaped error."""
    return ApiError(status, {"error": {"code": code, "message": message}}, headers)


def unauthorized() -> ApiError:
    return azure_error(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    )


def deployment_not_found() -> ApiError:
    return azure_error(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment within "
        "the last 5 minutes, please wait a moment and try again.",
    )


def retry_headers(retry_after_ms: int) -> dict[str, str]:
    """Both retry hints Azure sends: precise milliseconds and whole seconds rounded up."""
    return {
        "retry-after-ms": str(retry_after_ms),
        "retry-after": str(max(1, math.ceil(retry_after_ms / 1000))),
    }


def rate_limited(operation: str, reason: str, retry_after_ms: int) -> ApiError:
    """429 worded like Azure's; `reason` is "tokens" or "requests"."""
    seconds = max(1, math.ceil(retry_after_ms / 1000))
    what = "token rate limit" if reason == "tokens" else "call rate limit"
    message = (
        f"Requests to the {operation} Operation under Azure OpenAI API version v1 have exceeded "
        f"{what} of your current OpenAI S0 pricing tier. Please retry after {seconds} seconds."
    )
    return azure_error(429, "429", message, retry_headers(retry_after_ms))


_STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request was invalid (simulated fault)."),
    408: ("Timeout", "The operation was timeout."),
    429: ("429", "Requests have exceeded the rate limit of your current tier (simulated fault)."),
    500: ("InternalServerError", "The server had an error while processing your request."),
    502: ("BadGateway", "Bad gateway (simulated fault)."),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request."),
    504: ("GatewayTimeout", "The upstream timed out (simulated fault)."),
}


def fault_error(status: int, retry_after_ms: int | None) -> ApiError:
    """Generic Azure-like body for an injected status fault."""
    code, message = _STATUS_CODES.get(status, (str(status), f"Simulated HTTP {status}."))
    headers = retry_headers(retry_after_ms) if retry_after_ms is not None else None
    return azure_error(status, code, message, headers)
