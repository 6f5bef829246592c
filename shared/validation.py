"""Turn a raw request body into a validated request, or an OpenAI-shaped error."""

from __future__ import annotations

import json
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from shared.config import Settings
from shared.errors import GatewayError, bad_request, not_found, unprocessable

M = TypeVar("M", bound=BaseModel)


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_body(raw: bytes, schema: type[M]) -> M:
    """Parse and validate in one pass (pydantic's JSON parser), mapping failures to 400/422."""
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        kind = first["type"]
        param = _param(first["loc"]) or None
        if kind == "json_invalid":
            raise bad_request(f"The request body is not valid JSON: {first['msg']}.", code="invalid_json") from None
        if kind == "model_type":
            raise bad_request("The request body must be a JSON object.", code="invalid_json") from None
        if kind == "missing":
            raise bad_request(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter") from None
        raise unprocessable(f"Invalid value for '{param}': {first['msg']}.", param=param,
                            code="invalid_value") from None


def resolve_model(name: str, settings: Settings) -> str:
    """Map the caller's model (deployment name or alias) to an allowed deployment."""
    deployment = settings.models.get(name)
    if deployment is None:
        raise not_found(
            f"The model '{name}' does not exist or is not allowed by this gateway (OPENAI_MODELS).",
            param="model",
            code="model_not_found",
        )
    return deployment


def with_model(raw: bytes, deployment: str) -> bytes:
    """The body with ``model`` replaced; only called for aliases, so the common path forwards bytes as-is."""
    data = json.loads(raw)
    data["model"] = deployment
    return json.dumps(data, separators=(",", ":")).encode()


def mcp_server_allowed(server_url: str, allowed: tuple[str, ...]) -> bool:
    """Exact scheme and host, and a path under an allowed prefix on a segment boundary."""
    target = urlsplit(server_url)
    if target.scheme not in {"https", "http"} or not target.netloc:
        return False
    for prefix in allowed:
        rule = urlsplit(prefix)
        if (rule.scheme, rule.netloc.lower()) != (target.scheme, target.netloc.lower()):
            continue
        base = rule.path.rstrip("/")
        if target.path == base or target.path.startswith(base + "/") or not base:
            return True
    return False


def check_mcp_tools(tools: list[dict[str, object]] | None, settings: Settings) -> None:
    for index, tool in enumerate(tools or ()):
        if tool.get("type") != "mcp":
            continue
        param = f"tools[{index}]"
        url, connector = tool.get("server_url"), tool.get("connector_id")
        if isinstance(url, str) and mcp_server_allowed(url, settings.mcp_allowed_servers):
            continue
        if isinstance(connector, str) and connector in settings.mcp_allowed_servers:
            continue
        shown = url if isinstance(url, str) else connector
        raise GatewayError(
            400,
            f"MCP server {shown!r} is not allowed by this gateway (MCP_ALLOWED_SERVERS).",
            param=f"{param}.server_url",
            code="mcp_server_not_allowed",
        )
