"""Attacks on the model and MCP allowlists through the running host: the upstream only ever acts on
what the gateway judged.

Bodies are sent as raw bytes (httpx ``content=``) because the attacks are exactly what an SDK would
never produce: duplicate keys, escaped keys, odd URL spellings. After every refusal the simulator's
own records prove nothing reached the upstream; after every acceptance they prove the upstream got
the bytes that were checked (same size, same top-level keys, same model).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.security.conftest import Sim, post, start_stack

ALLOWED_URL = "https://mcp.example.test/api/mcp"
ALLOWED_CONNECTOR = "connector_docs"
EVIL_URL = "https://evil.test/mcp"


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[httpx.Client, Sim]]:
    with start_stack({"MCP_ALLOWED_SERVERS": f"{ALLOWED_URL},{ALLOWED_CONNECTOR}"}) as (stack, sim), \
            httpx.Client(base_url=f"{stack.host_url}/api/v1", timeout=30) as http:
        yield http, sim



def mcp_body(*tools: dict[str, Any]) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "input": "hi", "tools": list(tools)}).encode()


def mcp(url: str | None = None, **extra: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "mcp", "server_label": "docs", "require_approval": "never", **extra}
    if url is not None:
        tool["server_url"] = url
    return tool


def assert_refused(response: httpx.Response, sim: Sim, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert sim.stats()["total"] == 0, "a refused request reached the upstream"


def assert_forwarded_as_sent(sim: Sim, route: str, raw: bytes) -> dict[str, Any]:
    (record,) = sim.requests(route)
    assert record["body_size"] == len(raw)
    assert record["body_keys"] == sorted(json.loads(raw))
    return record


# --- MCP server URLs: every spelling an HTTP client resolves elsewhere is refused -----------------

WALKS_AROUND = [
    ALLOWED_URL + "/../../evil",
    ALLOWED_URL + "/%2e%2e/%2E%2E/evil",
    ALLOWED_URL + "/.%2e/%2e./evil",
    ALLOWED_URL + "/x/../../../evil",
    ALLOWED_URL + "/..;/..;/evil",
    ALLOWED_URL + "/\t../\t../evil",
    ALLOWED_URL + "/..%2F..%2Fevil",
    ALLOWED_URL + "/..%5C..%5Cevil",
    ALLOWED_URL + "\\..\\..\\evil",
    ALLOWED_URL + "//../../evil",
    ALLOWED_URL + "/%252e%252e/%252e%252e/evil",
    "https://mcp.example.test.evil.test/api/mcp",
    "https://mcp.example.test@evil.test/api/mcp",
    "https://user:pw@mcp.example.test/api/mcp",
    "https://evil.test\\@mcp.example.test/api/mcp",
    "https://evil.test%5C@mcp.example.test/api/mcp",
    "https://mcp.example.test%2eevil.test/api/mcp",
    "https://mcp.example.test:8443/api/mcp",
    "http://mcp.example.test/api/mcp",
    "https://mcp.example.test/api/mcpx",
    "https://mcp.example.test/API/mcp",
    "https:evil.test/api/mcp",
    "https:///evil.test/api/mcp",
    "https://\uff4dcp.example.test/api/mcp",
    "https://2130706433/api/mcp",
    " https://evil.test/api/mcp",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", WALKS_AROUND)
def test_mcp_url_that_resolves_outside_the_allowlist_is_refused(http: httpx.Client, sim: Sim, url: str) -> None:
    response = post(http, "/responses", mcp_body(mcp(url)))
    assert_refused(response, sim, 400, "mcp_server_not_allowed")
    assert response.json()["error"]["param"] == "tools[0].server_url"


SAME_SERVER = [
    "HTTPS://MCP.EXAMPLE.TEST:443/api/mcp/x",
    "https://mcp.example.test./api/mcp",
    ALLOWED_URL + "/x/../y",
    ALLOWED_URL + "/./sse",
    ALLOWED_URL + "/%7Etools?session=1",
    "https://mcp.example.test:0443/api/%6Dcp",
]


@pytest.mark.parametrize("url", SAME_SERVER)
def test_mcp_url_spelled_differently_but_on_the_allowed_server_passes(http: httpx.Client, sim: Sim,
                                                                       url: str) -> None:
    raw = mcp_body(mcp(url))
    response = post(http, "/responses", raw)
    assert response.status_code == 200, response.text
    assert_forwarded_as_sent(sim, "responses", raw)


# --- every identifying field of an MCP tool must be allowed -----------------------------------------

@pytest.mark.parametrize("tool", [
    mcp(EVIL_URL, connector_id=ALLOWED_CONNECTOR),
    mcp(ALLOWED_URL, connector_id="connector_evil"),
    mcp(connector_id=ALLOWED_URL),
    mcp(),
    {"type": "MCP", "server_label": "x", "server_url": EVIL_URL},
    {"type": "Mcp", "server_label": "x", "server_url": EVIL_URL},
    {"type": " mcp", "server_label": "x", "server_url": EVIL_URL},
    {"server_label": "x", "server_url": EVIL_URL},
    {"type": "function", "name": "f", "server_url": EVIL_URL},
    {"type": "mcp", "server_label": "x", "server_url": ALLOWED_URL, "Server_URL": EVIL_URL},
    {"type": "mcp", "server_label": "x", "connector_id": ALLOWED_CONNECTOR, "SERVER_URL": EVIL_URL},
    {"type": "mcp", "server_label": "x", "server_url": ALLOWED_URL, "\u017ferver_url": EVIL_URL},
    {"type": "mcp", "server_label": "x", "server_url": [EVIL_URL]},
])
def test_mcp_tool_with_any_unallowed_identity_is_refused(http: httpx.Client, sim: Sim,
                                                          tool: dict[str, Any]) -> None:
    response = post(http, "/responses", mcp_body({"type": "function", "name": "f"}, tool))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in {"mcp_server_not_allowed", "invalid_json"}
    assert response.json()["error"]["param"].startswith("tools[1]")
    assert sim.stats()["total"] == 0


def test_mcp_tool_with_allowed_url_and_connector_passes(http: httpx.Client, sim: Sim) -> None:
    raw = mcp_body(mcp(ALLOWED_URL, connector_id=ALLOWED_CONNECTOR), mcp(connector_id=ALLOWED_CONNECTOR))
    assert post(http, "/responses", raw).status_code == 200
    assert_forwarded_as_sent(sim, "responses", raw)


def test_mcp_tools_in_chat_completions_are_checked_too(http: httpx.Client, sim: Sim) -> None:
    raw = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                      "tools": [mcp(ALLOWED_URL + "/../../evil")]}).encode()
    assert_refused(post(http, "/chat/completions", raw), sim, 400, "mcp_server_not_allowed")


def test_allowed_mcp_tool_in_chat_completions_reaches_the_upstream_as_sent(http: httpx.Client, sim: Sim) -> None:
    raw = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                      "tools": [mcp(ALLOWED_URL)]}).encode()
    post(http, "/chat/completions", raw)  # the upstream may or may not support MCP in chat; it must see it
    assert_forwarded_as_sent(sim, "chat/completions", raw)


# --- duplicate keys: the policy would judge one value and the upstream act on another ---------------

DUPLICATES = [
    ("/responses", b'{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"mcp","server_label":"x",'
                   b'"server_url":"https://evil.test/mcp","server_url":"https://mcp.example.test/api/mcp"}]}'),
    ("/responses", b'{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"mcp","server_label":"x",'
                   b'"server_url":"https://evil.test/mcp"}],"tools":[]}'),
    ("/responses", b'{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"mcp","server_label":"x",'
                   b'"server_url":"https://evil.test/mcp"}],"t\\u006fols":[]}'),
    ("/responses", b'{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"mcp","type":"function",'
                   b'"server_label":"x","server_url":"https://evil.test/mcp","name":"f"}]}'),
    ("/responses", b'{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"mcp","server_label":"x",'
                   b'"server_url":"https://evil.test/mcp","server\\u005furl":"https://mcp.example.test/api/mcp"}]}'),
    ("/chat/completions", b'{"model":"gpt-5-secret","model":"gpt-4o-mini","messages":[]}'),
    ("/chat/completions", b'{"model":"gpt-5-secret","\\u006d\\u006f\\u0064\\u0065\\u006c":"gpt-4o-mini",'
                          b'"messages":[]}'),
    ("/chat/completions", b'{"mod\\u0065l":"gpt-5-secret","model":"gpt-4o-mini","messages":[]}'),
    ("/embeddings", b'{"model":"gpt-5-secret","input":"x","model":"text-embedding-3-small"}'),
    ("/chat/completions", b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a","content":"b"}]}'),
]


@pytest.mark.parametrize(("path", "raw"), DUPLICATES)
def test_duplicate_keys_are_refused_before_the_upstream(http: httpx.Client, sim: Sim, path: str, raw: bytes) -> None:
    response = post(http, path, raw)
    assert_refused(response, sim, 400, "invalid_json")
    assert "duplicate" in response.json()["error"]["message"].lower()


@pytest.mark.parametrize("raw", [
    b'{"model":"gpt-4o-mini","Model":"gpt-5-secret","messages":[]}',
    b'{"model":"gpt-4o-mini","MODEL":"gpt-5-secret","messages":[]}',
    b'{"model":"gpt-4o-mini","messages":[],"Tools":[{"type":"mcp","server_label":"x","server_url":"https://evil.test"}]}',
])
def test_keys_that_differ_only_in_case_from_a_judged_field_are_refused(http: httpx.Client, sim: Sim,
                                                                       raw: bytes) -> None:
    assert_refused(post(http, "/chat/completions", raw), sim, 400, "invalid_json")


def test_model_allowlist_judges_the_model_the_upstream_gets(http: httpx.Client, sim: Sim) -> None:
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    assert post(http, "/chat/completions", raw).status_code == 200
    assert assert_forwarded_as_sent(sim, "chat/completions", raw)["model"] == "gpt-4o-mini"
    sim.reset()
    assert_refused(post(http, "/chat/completions", raw.replace(b"gpt-4o-mini", b"gpt-5-secret")), sim, 404,
                   "model_not_found")
